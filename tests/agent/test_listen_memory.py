"""A listener meant to run for weeks holds nothing per reading or per batch beyond its latest two dates.

Found by `python benchmarks/soak.py` (BENCHMARKS.md, "Long-running memory"): every date's keys stayed in memory for
the life of the process (~200 bytes a reading, ~1.5 MiB a day for the 16-sensor synthetic city), and so did the
path of every part file written.
"""

import json
import tracemalloc
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from cityagent.agent.listen import _Batcher
from cityagent.agent.livehub import KEEP_DATES, DateKeys, LiveHub
from cityagent.agent.microbatch import append_batch
from cityagent.agent.readings import to_record
from cityagent.hub import write_hub
from tests.factories import tiny_hub

TZ = "Asia/Shanghai"
NOW = pd.Timestamp("2030-01-01", tz="UTC")  # every reading below lies in its past
DAYS = pd.date_range("2026-03-03", periods=10, freq="D", tz=TZ)  # ten days of a listener's life


def reading(sensor: str, day: pd.Timestamp) -> dict:
    return {"sensor_id": sensor, "ts": day.isoformat(), "speed": 30.0, "flow": 4.0}


def test_a_listener_keeps_the_keys_of_its_latest_dates_only_and_still_rejects_old_duplicates(tmp_path):
    write_hub(tiny_hub(), tmp_path / "hub")
    live = LiveHub(tmp_path / "hub")
    for day in DAYS:
        records = [to_record("traffic", reading(s, day), TZ) for s in ("s0", "s1", "s2")]
        assert append_batch(live, "traffic", records, now=NOW).accepted == 3
    held = [date for table, date in live._dates if table == "traffic"]  # private: the cache this test is about
    assert len(held) <= KEEP_DATES and held[-1] == "2026-03-12"

    again = append_batch(live, "traffic", [to_record("traffic", reading("s0", DAYS[0]), TZ)], now=NOW)
    assert again.accepted == 0 and [kind for kind, _ in again.rejected.values()] == ["duplicate"]  # read again


def test_a_listener_counts_the_files_it_writes_instead_of_keeping_their_paths(tmp_path):
    write_hub(tiny_hub(), tmp_path / "hub")
    batcher = _Batcher(LiveHub(tmp_path / "hub"), batch=3, flush_seconds=60, ahead=pd.Timedelta(days=3650))
    for day in DAYS:
        payload = json.dumps([reading(s, day) for s in ("s0", "s1", "s2")]).encode()
        batcher.add("city/traffic/readings", payload, datetime.now(UTC))
        batcher.flush()
    assert batcher.stats.files == len(DAYS) and batcher.stats.accepted == 3 * len(DAYS)


def test_one_batch_spanning_more_dates_than_kept_reads_each_date_once(tmp_path, monkeypatch):
    """Dates are forgotten between batches, not inside one: a backfill batch over many days must not reload a date's
    parts for every sensor it comes back to."""
    write_hub(tiny_hub(), tmp_path / "hub")
    live = LiveHub(tmp_path / "hub")
    days = DAYS[:4]
    append_batch(live, "traffic", [to_record("traffic", reading("s0", d), TZ) for d in days], now=NOW)
    reads = []
    parts = live.parts
    monkeypatch.setattr(live, "parts", lambda table, date: reads.append(date) or parts(table, date))
    later = [d + pd.Timedelta(minutes=m) for d in days for m in (15, 30)]  # on the hub's 15-min step
    records = [to_record("traffic", reading(s, d), TZ) for s in ("s1", "s2", "s0") for d in later]
    result = append_batch(live, "traffic", records, now=NOW)
    assert result.accepted == len(records)
    assert sorted(reads) == sorted(set(reads)) and len(set(reads)) <= len(days), reads
    assert len([key for key in live._dates if key[0] == "traffic"]) <= KEEP_DATES


def test_a_dates_keys_cost_bytes_per_reading_not_a_tuple_each():
    """A set of (node, ts) tuples held ~200 bytes a reading: half a GiB a day for 10,000 sensors' traffic."""
    sensors = np.array([f"s{i:04d}" for i in range(2000)], dtype=object)
    steps = pd.Timestamp("2026-03-02", tz=TZ).value + np.arange(48, dtype=np.int64) * pd.Timedelta("30min").value
    tracemalloc.start()
    keys = DateKeys()
    for t in steps:  # one batch per step, as the listener adds them
        keys.add(sensors, np.full(len(sensors), t))
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert held / (len(sensors) * len(steps)) < 16  # 8 bytes a reading, plus one small array per sensor

    assert keys.has("s0001", int(steps[7])) and not keys.has("s0001", int(steps[7]) + 1)
    assert keys.newest("s0001") == int(steps[-1]) and keys.newest("nope") is None and not keys.has("nope", 0)
    keys.add(np.array(["s0001", "s0001"], dtype=object), np.array([steps[3] + 5, steps[-1] + 9]))  # out of order
    assert keys.has("s0001", int(steps[3]) + 5) and keys.newest("s0001") == int(steps[-1]) + 9
    assert np.all(np.diff(keys.ts["s0001"]) > 0)
