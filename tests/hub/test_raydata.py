"""Ray Data windows over a partitioned Parquet hub equal the in-memory windows, node by node."""

import numpy as np
import pytest

from cityagent.hub import Hub, write_hub
from cityagent.hub.tensor import to_tensor
from cityagent.hub.windows import WindowSpec, make_split
from tests.factories import tiny_hub

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def ray_local(tmp_path_factory):
    ray = pytest.importorskip("ray")
    started = not ray.is_initialized()
    if started:  # a local instance never touches Redis on 6379; keep its files in the test's tmp dir
        ray.init(
            num_cpus=1, include_dashboard=False, _temp_dir=str(tmp_path_factory.mktemp("ray")), log_to_driver=False
        )
    yield ray
    if started:
        ray.shutdown()


def test_ray_windows_equal_in_memory_windows(ray_local, tmp_path):
    hub = tiny_hub(sensors=3, steps=40)  # crosses midnight: two date partitions
    traffic = hub.table("traffic")
    gappy = traffic.drop(index=traffic.index[[5, 41, 42]])  # s0 step 5, s1 steps 1-2
    hub = Hub({"traffic": gappy, "sensors": hub.table("sensors")}, hub.meta)
    write_hub(hub, tmp_path / "hub")
    assert len(list((tmp_path / "hub" / "traffic").glob("date=*/part-0.parquet"))) == 2

    from cityagent.hub.raydata import ray_windows

    ds = ray_windows(tmp_path / "hub", "traffic", "speed", input_len=4, horizon=2)
    rows = ds.to_pandas()
    st = to_tensor(hub, "traffic", ["speed"])
    spec = WindowSpec.sliding(4, 2)
    for n, node in enumerate(st.nodes):
        series = st.values[:, [n], :]  # [T, 1, 1]: one node, as each Ray task sees it
        split = make_split(series, series[:, :, 0], spec.anchors(0, len(st.ts)), spec, st.ts)
        x, y, mask = split.arrays()
        got = rows[rows["node"] == node].sort_values("anchor")
        np.testing.assert_array_equal(got["anchor"].to_numpy(), split.anchors)
        np.testing.assert_array_equal(np.stack(got["x"].to_numpy()), x[:, :, 0, 0])
        np.testing.assert_array_equal(np.stack(got["y"].to_numpy()), y[:, :, 0])
        np.testing.assert_array_equal(np.stack(got["mask"].to_numpy()), mask[:, :, 0])
    assert set(rows["node"]) == {"s0", "s1", "s2"}
    assert len(rows[rows["node"] == "s2"]) == 40 - 6 + 1  # complete series: every window
    assert len(rows[rows["node"] == "s0"]) == 40 - 6 + 1 - 4  # four windows see the missing step 5
