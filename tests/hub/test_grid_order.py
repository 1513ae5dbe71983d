"""Grid cells: a zone's own row/col decide where it sits, whatever the order of the zones table's rows; the grid's
shape comes from them when hub.json gives none; a grid with two zones in one cell is refused."""

import numpy as np
import pandas as pd
import pytest

from cityagent.errors import ConfigError, HubError
from cityagent.hub import Hub
from cityagent.hub.grid import node_grid
from cityagent.hub.hub import HubMeta
from cityagent.hub.protocols import build_task
from cityagent.models.registry import build_model

ROWS, COLS = 3, 4


def gridded(
    order: list[int] | None = None, extra: dict | None = None, cells: list[tuple[int, int]] | None = None
) -> Hub:
    """A 3x4 demand grid; zone z{r}{c} sits at (r, c); the zones table lists them in ``order``."""
    cells = cells or [(r, c) for r in range(ROWS) for c in range(COLS)]
    zones = pd.DataFrame(
        {"zone_id": [f"z{r}{c}" for r, c in cells], "row": [r for r, _ in cells], "col": [c for _, c in cells]}
    )
    if order is not None:
        zones = zones.iloc[order].reset_index(drop=True)
    ts = pd.date_range("2026-03-02", periods=200, freq="1h", tz="Asia/Shanghai")
    rng = np.random.default_rng(0)
    demand = pd.DataFrame(
        {
            "zone_id": np.repeat(zones.zone_id, len(ts)),
            "ts": np.tile(ts, len(zones)),
            "count": rng.poisson(5, len(zones) * len(ts)).astype(float),
        }
    )
    return Hub(
        {"demand": demand, "zones": zones}, HubMeta(name="own", step="1h", timezone="Asia/Shanghai", extra=extra or {})
    )


@pytest.mark.parametrize("extra", [{}, {"grid": [ROWS, COLS]}])
def test_a_shuffled_zones_table_still_gives_the_row_major_grid(extra):
    shuffled = list(np.random.default_rng(1).permutation(ROWS * COLS))
    hub = gridded(shuffled, extra)
    task = build_task(hub, "strict", input_len=6, horizon=1)
    assert task.nodes == [f"z{r}{c}" for r in range(ROWS) for c in range(COLS)]  # not the table's order
    assert node_grid(hub, task.nodes) == (ROWS, COLS)  # derived from row/col when hub.json gives no grid
    adjacency = task.adjacency
    index = {n: i for i, n in enumerate(task.nodes)}
    assert adjacency[index["z11"], index["z12"]] and adjacency[index["z11"], index["z21"]]  # true neighbours
    assert not adjacency[index["z03"], index["z10"]]  # end of one row, start of the next: not neighbours


def test_grid_models_build_on_a_grid_from_row_and_col():
    hub = gridded(list(range(ROWS * COLS))[::-1])
    task = build_task(hub, "strict", input_len=6, horizon=1)
    grid = node_grid(hub, task.nodes)
    common = {
        "num_nodes": len(task.nodes),
        "in_features": len(task.feature_names),
        "input_len": 6,
        "horizon": 1,
        "target_channel": 0,
        "adjacency": None,
        "grid": grid,
    }
    model = build_model("st_resnet", **common)
    assert model.grid == (ROWS, COLS)


def test_two_zones_in_one_cell_are_refused_naming_the_zone():
    hub = gridded()
    zones = hub.table("zones")
    zones.loc[zones.zone_id == "z11", ["row", "col"]] = (0, 0)  # z11 also claims cell (0, 0)
    with pytest.raises(HubError, match=r"zone 'z11' has row=0, col=0, but it is node 1 of the task"):
        build_task(hub, "strict", input_len=6, horizon=1)


def test_without_row_col_or_a_complete_grid_grid_models_say_how_to_give_one():
    hub = gridded(cells=[(r, c) for r in range(ROWS) for c in range(COLS)][:-1])  # 11 cells: not a full grid
    task = build_task(hub, "strict", input_len=6, horizon=1)
    assert node_grid(hub, task.nodes) is None
    with pytest.raises(ConfigError, match=r"zones integer row and col columns.*extra.*grid"):
        build_model(
            "risk_conv",
            num_nodes=11,
            in_features=len(task.feature_names),
            input_len=6,
            horizon=1,
            target_channel=0,
            adjacency=None,
            grid=None,
        )
