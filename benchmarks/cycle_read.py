"""What one agent cycle reads and holds: all of `loop.history` against what its models need, side by side.

    python benchmarks/cycle_read.py                  # 1,000 sensors, 36 days of 5-minute readings, ~1 min
    python benchmarks/cycle_read.py --sensors 50 --days 6 --repeats 1   # a smoke check

Synthesises one city whose age is the default `loop.history` (35 days, plus a day: the steady state of any older
hub) with `--decisions` congestion alerts per 5-minute step already decided (filed by the date they were made, as
the agent files them, made as each step's readings arrived), then runs what a cycle does with the hub for a traffic
model (one hour in, one hour out) in a fresh process per try, alternating, and reports each variant's time (median
of `--repeats`) and peak RSS (the largest):

- `history, whole-table drift`: the cycle before this change: every table read back `loop.history`, and drift's
  values laid out as the whole table's `[T, N]` array before its last day was cut out;
- `history`: the same read, drift laid out for its window only;
- `needed`: each table read as far as the cycle needs (`agent.cycle_reach`), drift for its window only.

Each try reads the hub, finds what the hub says was decided (`decided_windows`), builds the model's input window
(`sense`) and the drift window's values; every variant must give the same window, the same drift values and the same
answer for the window's anchor, or the script fails.
"""

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VARIANTS = ("history, whole-table drift", "history", "needed")
HISTORY = "35D"


def facts(hub):
    from cityagent.agent.sense import ModelFacts

    nodes = [str(n) for n in hub.table("sensors")["sensor_id"]]
    return ModelFacts(
        name="traffic", version="1", domain="traffic", nodes=nodes, step="5min", input_offsets=tuple(range(-11, 1)),
        target_offsets=tuple(range(1, 13)), feature_names=["speed"], target="speed",
    )  # fmt: skip


def decided_before(root: Path, per_step: int) -> None:
    """``per_step`` congestion alerts for each of the last 35 days' steps, filed as the agent files them, each made
    as its step's readings arrived; the newest step's too, so every variant must find its window decided."""
    import numpy as np
    import pandas as pd

    from cityagent.agent.partfiles import write_part
    from cityagent.hub import read_hub

    hub = read_hub(root, recent=pd.Timedelta(days=1))
    tz = hub.meta.timezone
    newest = hub.table("traffic")["ts"].max()
    anchor = newest  # the window sense ends at: every sensor has reported the newest step
    sensors = hub.table("sensors")["sensor_id"].astype(str).to_numpy()
    first = newest - pd.Timedelta(days=35)
    steps = pd.date_range(first, anchor, freq=hub.meta.step, tz=tz)
    rng = np.random.default_rng(0)
    for day, times in pd.Series(steps, index=steps).groupby(steps.date):
        at = np.repeat(times.to_numpy(), per_step)
        made = pd.DatetimeIndex(at).tz_convert(tz) + pd.Timedelta(seconds=3)  # decided as the readings arrived
        value = rng.uniform(5, 20, len(at)).round(1)
        rows = pd.DataFrame(
            {
                "ts": made,
                "kind": "congestion_alert",
                "target_id": rng.choice(sensors, len(at)),
                "value": value,
                "detail": [f"forecast {v:.1f} km/h" for v in value],
                "model": "traffic",
                "model_version": "1",
                "anchor": pd.DatetimeIndex(at).tz_convert(tz).map(pd.Timestamp.isoformat),
            }
        )
        write_part(root / "decisions" / f"date={day:%Y-%m-%d}", rows)


def one_try(root: Path, variant: str, out: Path) -> None:
    """One cycle's work with the hub, in this process; writes time, peak RSS and what it built to ``out``."""
    import numpy as np
    import pandas as pd

    from cityagent.agent.act import decided_windows
    from cityagent.agent.agent_config import load_agent_config
    from cityagent.agent.cycle_reach import cycle_reach
    from cityagent.agent.drift_hub import hub_values, recent_start
    from cityagent.agent.sense import ModelFacts, sense
    from cityagent.hub import read_hub
    from cityagent.hub.files import newest_dates, read_manifest
    from cityagent.hub.hub import Hub, Origin
    from cityagent.hub.tensor import to_tensor

    cfg = load_agent_config()
    history = pd.Timedelta(HISTORY)
    t0 = time.perf_counter()
    if variant == "needed":
        meta = read_manifest(root)  # the facts come from the server before the read
        model = facts(Hub({"sensors": pd.read_parquet(root / "sensors.parquet")}, meta, Origin("files")))
        reach = cycle_reach(cfg, [model], history, meta, newest=newest_dates(root))
        hub = read_hub(root, recent=history, reach=reach)
    else:
        hub = read_hub(root, recent=history)
        model = facts(hub)
    assert isinstance(model, ModelFacts)
    decided = decided_windows(hub)
    window = sense(hub, model)
    done = decided.get(("traffic", window.anchor.tz_convert("UTC")))
    since = recent_start(hub, "traffic", cfg.drift.window)
    if variant.endswith("whole-table drift"):  # as hub_values did: the whole table, then the window's steps
        st = to_tensor(hub, "traffic", ["speed"])
        values = st.channel("speed")[st.ts >= since]
    else:
        values = hub_values(hub, "traffic", ["speed"], start=since)[0]["speed"]
    seconds = time.perf_counter() - t0
    rows = int(sum(len(df) for df in hub.tables.values()))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    np.savez(out.with_suffix(".npz"), x=window.x, drift=values)
    said = None if done is None else [done.rows, done.versions]
    out.write_text(
        json.dumps({"seconds": seconds, "peak_mib": peak, "rows": rows, "anchor": str(window.anchor), "decided": said})
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sensors", type=int, default=1000)
    ap.add_argument("--days", type=int, default=36, help="days of readings (36: all of a 35-day loop.history)")
    ap.add_argument("--repeats", type=int, default=3, help="tries of each variant (median time, largest RSS)")
    ap.add_argument("--decisions", type=int, default=100, help="decisions made per 5-minute step")
    ap.add_argument("--try", dest="one", nargs=3, metavar=("HUB", "VARIANT", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        one_try(Path(args.one[0]), args.one[1], Path(args.one[2]))
        return 0

    import numpy as np

    from cityagent.hub.synth import synthesize

    work = Path(tempfile.mkdtemp(prefix="cityagent-cycle-read-"))
    try:
        root = synthesize(work / "hub", sensors=args.sensors, zones=64, days=args.days, step="5min", seed=0)
        decided_before(root, args.decisions)
        results: dict[str, list[dict]] = {v: [] for v in VARIANTS}
        built: dict[str, dict] = {}
        for r in range(args.repeats):
            for i, variant in enumerate(VARIANTS):
                out = work / f"try-{r}-{i}.json"
                cmd = [sys.executable, __file__, "--try", str(root), variant, str(out)]
                subprocess.run(cmd, check=True)
                results[variant].append(json.loads(out.read_text()))
                with np.load(out.with_suffix(".npz")) as z:
                    built[variant] = {"x": z["x"], "drift": z["drift"]}
        base = built[VARIANTS[0]]
        for variant in VARIANTS[1:]:  # the same window and the same drift values, to the bit
            np.testing.assert_array_equal(built[variant]["x"], base["x"])
            np.testing.assert_array_equal(built[variant]["drift"], base["drift"])
        anchors = {t["anchor"] for ts in results.values() for t in ts}
        assert len(anchors) == 1, anchors
        said = {json.dumps(t["decided"]) for ts in results.values() for t in ts}
        assert len(said) == 1 and "null" not in said, said  # the window's decisions found alike
        print(f"{args.sensors} sensors, {args.days} days of 5-minute readings, loop.history {HISTORY}")
        print(f"{'variant':<28} {'rows read':>11} {'peak RSS MiB':>13} {'seconds':>8}")
        summary = {}
        for variant, tries in results.items():
            seconds = statistics.median(t["seconds"] for t in tries)
            peak = max(t["peak_mib"] for t in tries)
            summary[variant] = (seconds, peak)
            print(f"{variant:<28} {tries[0]['rows']:>11,} {peak:>13.1f} {seconds:>8.3f}")
        (t0, m0), (t2, m2) = summary[VARIANTS[0]], summary["needed"]
        same = "same window, drift values and decisions found"
        print(f"before / needed: {t0 / t2:.1f}x the time, {m0 / m2:.1f}x the peak RSS; {same}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
