"""Ray Data windows over a partitioned Parquet hub equal the in-memory windows, node by node."""

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
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


def test_ray_windows_equal_in_memory_windows(ray_local, tmp_path, monkeypatch):
    """Over a hub with a gap per sensor, and with a compacted part beside the parts it holds (a compaction cut
    short before its deletes), which Ray must not read as well."""
    import cityagent.agent.compact as compact
    from cityagent.hub.raydata import _files

    hub = tiny_hub(sensors=3, steps=40)  # crosses midnight: two date partitions
    traffic = hub.table("traffic")
    gappy = traffic.drop(index=traffic.index[[5, 41, 42]])  # s0 step 5, s1 steps 1-2
    hub = Hub({"traffic": gappy, "sensors": hub.table("sensors")}, hub.meta)
    write_hub(hub, tmp_path / "hub")
    assert len(list((tmp_path / "hub" / "traffic").glob("date=*/part-0.parquet"))) == 2
    folder = tmp_path / "hub" / "traffic" / "date=2026-03-02"
    day = pq.read_table(folder / "part-0.parquet")
    pq.write_table(day.slice(0, 40), folder / "part-0.parquet")  # two parts, as appends leave them
    pq.write_table(day.slice(40), folder / "part-1.parquet")
    monkeypatch.setattr(compact, "_remove", lambda paths: 0)  # both parts stay beside the compacted one
    (merged,) = compact.compact_hub(tmp_path / "hub", ["traffic"], min_parts=2)[1:]
    assert merged.parts == 2 and len(list(folder.glob("*.parquet"))) == 3
    read = [Path(f).relative_to(folder.parent) for f in _files(str(tmp_path / "hub"), "traffic")]
    assert read == [Path("date=2026-03-01/part-0.parquet"), merged.path.relative_to(folder.parent)]

    rows = same_as_in_memory(tmp_path / "hub", hub)
    assert set(rows["node"]) == {"s0", "s1", "s2"}
    assert len(rows[rows["node"] == "s2"]) == 40 - 6 + 1  # complete series: every window
    assert len(rows[rows["node"] == "s0"]) == 40 - 6 + 1 - 4  # four windows see the missing step 5


def same_as_in_memory(root, hub):
    """Ray's windows of the hub at ``root`` equal the in-memory windows of ``hub``, node by node."""
    from cityagent.hub.raydata import ray_windows

    ds = ray_windows(root, "traffic", "speed", input_len=4, horizon=2)
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
    return rows


def appended(root: Path, hub: Hub) -> Path:
    """``hub`` written at ``root`` with each date's traffic in 4 parts, as the listener's appends leave it."""
    write_hub(hub, root)
    for path in sorted((root / "traffic").glob("date=*/part-0.parquet")):
        day, n = pq.read_table(path), 4
        path.unlink()
        for i in range(n):
            pq.write_table(day.slice(i * day.num_rows // n, day.num_rows // n + 1), path.parent / f"part-{i}.parquet")
    return root


def test_a_compaction_between_listing_and_reading_sends_ray_to_a_new_listing(ray_local, tmp_path, monkeypatch):
    import cityagent.agent.compact as compact
    import cityagent.hub.raydata as raydata

    hub = tiny_hub(sensors=3, steps=40)
    root = appended(tmp_path / "hub", hub)
    real, listings = raydata._files, []

    def compacted_after_listing(location, table):
        listings.append(real(location, table))
        if len(listings) == 1:  # the listing is taken; now its parts are merged and deleted
            assert [m.parts for m in compact.compact_hub(root, ["traffic"])] == [4, 4]
        return listings[-1]

    monkeypatch.setattr(raydata, "_files", compacted_after_listing)
    same_as_in_memory(root, hub)
    assert len(listings) == 2 and all("+" in Path(f).name for f in listings[1])


def test_a_compaction_while_ray_reads_sends_it_to_a_new_listing(ray_local, tmp_path, monkeypatch):
    """The parts vanish after Ray planned the read: its read tasks fail, and the read starts over."""
    import ray

    import cityagent.agent.compact as compact

    hub = tiny_hub(sensors=3, steps=40)
    root = appended(tmp_path / "hub", hub)
    real, runs = ray.data.Dataset.materialize, []

    def compacted_first(self):
        runs.append(self)
        if len(runs) == 1:
            compact.compact_hub(root, ["traffic"])
        return real(self)

    monkeypatch.setattr(ray.data.Dataset, "materialize", compacted_first)
    same_as_in_memory(root, hub)
    assert len(runs) == 2


def test_parts_that_keep_vanishing_are_an_error_naming_the_table(ray_local, tmp_path, monkeypatch):
    import cityagent.hub.raydata as raydata
    from cityagent.errors import HubError
    from cityagent.hub.files import LISTINGS

    root = appended(tmp_path / "hub", tiny_hub(sensors=3, steps=40))
    real, listings = raydata._files, []

    def with_a_gone_part(location, table):
        listings.append(real(location, table))  # Ray, not the span's two files, meets the gone part
        return [listings[-1][0], str(root / "traffic" / "date=2026-03-01" / "part-gone.parquet"), *listings[-1][1:]]

    monkeypatch.setattr(raydata, "_files", with_a_gone_part)
    with pytest.raises(HubError, match=rf"table traffic: .*part-gone.parquet vanished .*{LISTINGS} times"):
        raydata.ray_windows(root, "traffic", "speed", input_len=4, horizon=2)
    assert len(listings) == LISTINGS
