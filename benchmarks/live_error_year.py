"""The drift's live MAE after a year of live errors: the whole file read as a table each time, against the ledger.

    python benchmarks/live_error_year.py               # 3 models, a year of 5-minute cycles (~130 MB), ~1 min
    python benchmarks/live_error_year.py --days 30     # a smoke check

Writes `live_error.jsonl` as an agent running `--days` days at 5-minute cycles leaves it (one record per model and
cycle), then, in a fresh process per variant, does what the drift check does for each model each cycle (its live
MAE over the last day, of forecasts made on the hub) for `--cycles` cycles, one cycle's records appended between
them, and reports the first cycle (the whole file read at start), the median of the others and the peak RSS:

- `whole file`: how `recent_mae` worked before: `live_errors(model)` reads the file into a table, then filters it;
- `ledger`: `agent/live_error.py` keeps per model, version and hub the anchors scored and each record's last
  target, targets and summed error, reading only what was appended since its last look.

Then each process does what `cityagent agent status` does (the records scored in the last day): the whole file read
into a table and filtered, against `live_summary`, which skips unparsed the chunks scored before the span.

Both must give the same MAE for every model and cycle, and count the same forecasts for the status, or the
script fails.
"""

import argparse
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODELS = ("traffic-city", "demand-city", "risk-city")
HUB_ID = "a1b2c3d4e5f6"
T0 = "2026-01-01T00:00:00+08:00"


def line(model: str, i: int, rng: random.Random) -> str:
    from datetime import UTC, datetime, timedelta

    anchor = datetime.fromisoformat(T0) + timedelta(minutes=5 * i)
    scored = (anchor + timedelta(hours=1, minutes=20)).astimezone(UTC)  # as the agent writes it: UTC, to the second
    n = 192
    return json.dumps(
        {"model": model, "version": "7", "run_id": "0123456789abcdef0123456789abcdef", "domain": model.split("-")[0],
         "anchor": anchor.isoformat(), "first_target": (anchor + timedelta(minutes=5)).isoformat(),
         "last_target": (anchor + timedelta(hours=1)).isoformat(), "n": n, "mae": rng.uniform(2, 9),
         "rmse": rng.uniform(3, 12), "scored_at": scored.isoformat(),
         "coverage": 1.0, "hub": "/srv/city/hub", "hub_id": HUB_ID}
    )  # fmt: skip


def write_year(path: Path, cycles: int) -> None:
    rng = random.Random(0)
    with path.open("w") as fh:
        for i in range(cycles):
            fh.write("".join(line(m, i, rng) + "\n" for m in MODELS))


def run_variant(variant: str, home: str, cycles: int, extra: int) -> None:
    """In a fresh process: ``extra`` drift checks, one cycle's records appended after each; prints JSON."""
    import os

    os.environ["CITYAGENT_HOME"] = home
    import pandas as pd

    from cityagent.agent import live_error

    path = Path(home) / "agent" / "live_error.jsonl"
    rng, times, maes = random.Random(1), [], []
    for k in range(extra):
        newest = pd.Timestamp(T0) + pd.Timedelta(minutes=5 * (cycles + k))
        since = newest - pd.Timedelta("1d")
        t0 = time.perf_counter()
        for model in MODELS:
            if variant == "ledger":
                maes.append(live_error.recent_mae(model, "7", since, HUB_ID))
            else:
                df = live_error.live_errors(model)
                df = df[(df["hub_id"] == HUB_ID) & (df["version"] == "7") & (df["n"] > 0)]
                df = df[pd.to_datetime(df["last_target"], utc=True) >= since.tz_convert("UTC")]
                maes.append(float((df["mae"] * df["n"]).sum() / df["n"].sum()))
        times.append(time.perf_counter() - t0)
        with path.open("a") as fh:
            fh.write("".join(line(m, cycles + k, rng) + "\n" for m in MODELS))
    # what `cityagent agent status` reads: the records scored in the last day
    newest = pd.Timestamp(T0) + pd.Timedelta(minutes=5 * (cycles + extra - 1)) + pd.Timedelta("80min")
    t0 = time.perf_counter()
    if variant == "ledger":
        forecasts = int(live_error.live_summary(newest - pd.Timedelta("1d"))["forecasts"].sum())
    else:  # as live_summary read it before: the whole file, then the span
        df = live_error.live_errors()
        df = df[pd.to_datetime(df["scored_at"], utc=True) >= newest - pd.Timedelta("1d")]
        forecasts = int((df["n"] > 0).sum())
    status = {"status_s": time.perf_counter() - t0, "status_forecasts": forecasts}
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"times": times, "maes": maes, "rss_mib": rss, **status}))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--days", type=int, default=365)
    p.add_argument("--cycles", type=int, default=6, help="drift checks timed per variant")
    p.add_argument("--variant", help=argparse.SUPPRESS)
    p.add_argument("--home", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    cycles = args.days * 288
    if args.variant:
        run_variant(args.variant, args.home, cycles, args.cycles)
        return 0
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for variant in ("whole file", "ledger"):  # each on its own copy: a variant appends to the file
            home = Path(tmp) / variant.replace(" ", "-")
            (home / "agent").mkdir(parents=True)
            write_year(home / "agent" / "live_error.jsonl", cycles)
            size = (home / "agent" / "live_error.jsonl").stat().st_size
            cmd = [sys.executable, __file__, "--days", str(args.days), "--cycles", str(args.cycles)]
            out = subprocess.run([*cmd, "--variant", variant, "--home", str(home)], capture_output=True, text=True)
            if out.returncode != 0:
                sys.exit(out.stderr)
            results[variant] = json.loads(out.stdout.splitlines()[-1])
    old, new = results["whole file"], results["ledger"]
    if any(abs(a - b) > 1e-9 * abs(a) for a, b in zip(old["maes"], new["maes"], strict=True)):
        sys.exit(f"the variants disagree: {old['maes']} vs {new['maes']}")
    what = f"{cycles * len(MODELS):,} records, {size / 2**20:.1f} MiB ({args.days} days x {len(MODELS)} models)"
    print(f"live_error.jsonl: {what}")
    if old["status_forecasts"] != new["status_forecasts"]:
        sys.exit(f"agent status counts differ: {old['status_forecasts']} vs {new['status_forecasts']}")
    print("| variant | first cycle (s) | later cycles, median (s) | agent status, last day (s) | peak RSS (MiB) |")
    print("|---|---|---|---|---|")
    for name, r in results.items():
        later = statistics.median(r["times"][1:]) if len(r["times"]) > 1 else float("nan")
        print(f"| {name} | {r['times'][0]:.3f} | {later:.4f} | {r['status_s']:.3f} | {r['rss_mib']:.0f} |")
    ratio = statistics.median(old["times"][1:]) / statistics.median(new["times"][1:])
    print(f"later cycles: {ratio:.0f}x faster with the ledger; both give the same MAE for every model and cycle")
    return 0


if __name__ == "__main__":
    sys.exit(main())
