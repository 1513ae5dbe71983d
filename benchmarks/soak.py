"""Soak: does the memory of the long-running processes (gRPC server, agent loop, MQTT listener) grow as they work?

    python benchmarks/soak.py            # ~6 min on 2 cores
    python benchmarks/soak.py --quick    # ~1.2 min, a smoke check: its slopes are noisy

Sets up a temporary CITYAGENT_HOME with `cityagent demo --workers 0 --epochs 1` (synthetic city → train traffic,
demand and risk → export → register → promote), then runs each process for real, in its own process, and samples
its RSS (psutil) while it works:

1. `cityagent serve` of the three champions (registry polled every second): this process sends ModelInfer
   requests with real windows from the hub, unary and on streams, plus a few bad ones (unknown names, wrong
   shapes) and ModelMetadata calls; RSS every `--every` requests.
2. `cityagent agent run --interval ...` against that server: before each cycle this process appends one new step
   of readings to the hub (as the listener would), so every cycle senses, forecasts, decides, scores and checks
   drift; RSS after each cycle's turns.
3. `cityagent hub listen` on the local Mosquitto: this process publishes the city's readings (one JSON array per
   table and step, weeks of 5-minute steps replayed from the hub's last day); RSS after each batch is written.

Per process: RSS once warmed up (after the first `--warmup` share of the work), RSS at the end, and a least-squares
slope over the samples after warm-up, as growth per 1000 requests / 100 cycles / 100k readings. Verdict "growing"
when the fitted growth over the measured span exceeds GROWING_MIB and three times the scatter around the line.
"""

import argparse
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil

CLI = [sys.executable, "-m", "cityagent.agent.cli"]
MODELS = ("traffic-synthetic", "demand-synthetic", "risk-synthetic")
FEEDS = ("traffic", "demand", "weather")  # what the city streams; risk reads the hub's clock (any table)
GROWING_MIB = 4.0  # less than this over a run is what allocator arenas and caches settling move RSS by
SIZES = {  # full / --quick
    "requests": (60000, 6000),
    "every": (1000, 500),
    "cycles": (200, 40),
    "readings": (300000, 60000),
    "batch": (10000, 4000),
}
CHUNK_STEPS = 100  # steps published before the listener must have written the chunk before
OUTCOME = re.compile(r"^\S+ \S+ (\S+): (decided|unchanged|skipped|failed): ")


def rss_mib(pid: int) -> float:
    return psutil.Process(pid).memory_info().rss / 2**20


@dataclass
class Trace:
    """RSS samples of one process against the work it had done (``x`` in ``unit``s)."""

    name: str
    unit: str
    per: int  # growth is reported per this many units
    x: list[float] = field(default_factory=list)
    rss: list[float] = field(default_factory=list)
    t: list[float] = field(default_factory=list)  # seconds since t0
    t0: float = field(default_factory=time.monotonic)
    notes: dict[str, Any] = field(default_factory=dict)

    def add(self, done: float, pid: int) -> None:
        self.x.append(done)
        self.rss.append(rss_mib(pid))
        self.t.append(time.monotonic() - self.t0)

    def summary(self, warmup: float) -> dict[str, Any]:
        """Warmed-up and end RSS, slope per ``per`` units over the samples after the first ``warmup`` share."""
        x, y = np.asarray(self.x), np.asarray(self.rss)
        keep = x >= warmup * x[-1]
        if keep.sum() < 3:
            keep[-3:] = True
        xs, ys = x[keep], y[keep]
        slope, icpt = np.polyfit(xs, ys, 1)
        scatter = float(np.std(ys - (slope * xs + icpt)))
        fitted = float(slope * (xs[-1] - xs[0]))
        growing = fitted > GROWING_MIB and fitted > 3 * scatter
        return {
            "name": self.name, "unit": self.unit, "per": self.per, "samples": int(keep.sum()),
            "warm_at": float(xs[0]), "end_at": float(x[-1]), "warm_mib": float(ys[0]), "end_mib": float(y[-1]),
            "peak_mib": float(y.max()), "slope_mib": float(slope * self.per), "fitted_mib": fitted,
            "scatter_mib": scatter, "verdict": "growing" if growing else "flat", "seconds": round(self.t[-1], 1),
            **self.notes,
        }  # fmt: skip


def start(cmd: list[str], log: Path, ready: str, env: dict[str, str], timeout_s: float = 120) -> tuple:
    """Start ``cmd`` with output to ``log``; wait until a line matches ``ready``; (process, match)."""
    with log.open("w") as out:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    what = "cityagent " + " ".join(cmd[3:])
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        m = re.search(ready, log.read_text(), re.M)
        if m:
            return proc, m
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited: {log.read_text()[-2000:]}")
        time.sleep(0.2)
    proc.kill()
    raise TimeoutError(f"{what} did not start in {timeout_s} s: {log.read_text()[-2000:]}")


def stop(proc: subprocess.Popen, timeout_s: float = 60) -> int:
    """SIGTERM (each process finishes its cycle / batch / requests), then the exit code."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


class Feed:
    """New readings for any step after the hub's end, replayed from its last day (same time of day)."""

    def __init__(self, hub_dir: Path) -> None:
        from cityagent.hub import read_hub

        hub = read_hub(hub_dir)
        self.tz, self.step = hub.meta.timezone, hub.meta.step_delta
        end = hub.table("traffic")["ts"].max().tz_convert(self.tz)
        self.first = end + self.step
        self.day: dict[str, dict[Any, list[dict]]] = {}
        for table in FEEDS:
            df = hub.table(table)
            df = df[df["ts"] > end - np.timedelta64(1, "D")].copy()
            df["slot"] = df["ts"].dt.tz_convert(self.tz).dt.strftime("%H:%M")
            rows = df.drop(columns="ts").to_dict("records")
            self.day[table] = {}
            for r in rows:
                self.day[table].setdefault(r.pop("slot"), []).append(r)

    def at(self, i: int) -> tuple[Any, dict[str, list[dict]]]:
        """Step ``i`` after the hub's end: its time and ``{table: [JSON reading, ...]}``."""
        ts = self.first + i * self.step
        stamp, slot = ts.isoformat(), f"{ts:%H:%M}"
        return ts, {t: [{**r, "ts": stamp} for r in self.day[t].get(slot, [])] for t in FEEDS}


# -- 1. the gRPC server ------------------------------------------------------------------------------------------


def windows(address: str, hub_dir: Path) -> dict[str, np.ndarray]:
    """A real input window per model, sensed from the hub as the agent does."""
    from cityagent.agent.sense import sense
    from cityagent.agent.think import ServingClient
    from cityagent.hub import read_hub

    hub, client = read_hub(hub_dir), ServingClient(address)
    try:
        return {m: np.ascontiguousarray(sense(hub, client.facts(m)).x, np.float32) for m in MODELS}
    finally:
        client.close()


def soak_serving(address: str, pid: int, hub_dir: Path, n: int, every: int) -> Trace:
    """``n`` ModelInfer requests, a fifth of each ``every`` on one stream, 2 % of the unary ones bad; RSS every
    ``every``."""
    import tritonclient.grpc as tc
    from tritonclient.utils import InferenceServerException

    xs = windows(address, hub_dir)
    tensors = {}
    for m, x in xs.items():
        tensors[m] = tc.InferInput("x", list(x.shape), "FP32")
        tensors[m].set_data_from_numpy(x)
    wrong = tc.InferInput("x", [1, 2, 3, 1], "FP32")
    wrong.set_data_from_numpy(np.zeros((1, 2, 3, 1), np.float32))
    client = tc.InferenceServerClient(address)
    trace, counts = Trace("serving (`cityagent serve`)", "requests", 1000), Counter()
    answered = threading.Semaphore(0)

    def on_answer(result: Any, error: Any) -> None:
        counts["stream error" if error else "stream ok"] += 1
        answered.release()

    done = 0
    trace.add(done, pid)
    while done < n:
        streamed = every // 5
        for i in range(every - streamed):
            model = MODELS[i % 3]
            try:
                if i % 100 == 37:  # a random unknown name: must not grow the metric labels
                    client.infer(f"nope-{uuid.uuid4().hex[:8]}", [tensors[model]])
                elif i % 100 == 87:
                    client.infer(model, [wrong])
                else:
                    client.infer(model, [tensors[model]])
                    counts["unary ok"] += 1
            except InferenceServerException:
                counts["unary error"] += 1
        for m in MODELS:
            client.get_model_metadata(m)
        client.start_stream(callback=on_answer)
        for i in range(streamed):
            model = MODELS[i % 3]
            client.async_stream_infer(model, [tensors[model]], request_id=str(done + i))
        for _ in range(streamed):
            answered.acquire(timeout=60)
        client.stop_stream()
        done += every
        trace.add(done, pid)
        print(f"  serving: {done} requests, RSS {trace.rss[-1]:.1f} MiB", flush=True)
    client.close()
    trace.notes["outcomes"] = dict(counts)
    return trace


# -- 2. the agent loop -------------------------------------------------------------------------------------------


def soak_agent(env: dict[str, str], work: Path, hub_dir: Path, address: str, cycles: int, interval: float) -> Trace:
    """`cityagent agent run` for ``cycles`` cycles, one new step of readings appended to the hub before each."""
    from cityagent.agent.livehub import LiveHub
    from cityagent.agent.microbatch import append_batch
    from cityagent.agent.readings import to_record

    feed, live = Feed(hub_dir), LiveHub(hub_dir)

    def append(i: int) -> None:
        for table, objs in feed.at(i)[1].items():
            append_batch(live, table, [to_record(table, o, feed.tz) for o in objs])

    append(0)
    cmd = [*CLI, "agent", "run", "--hub", str(hub_dir), "--server", address, "--interval", f"{interval}s",
           "--no-retrain"]  # fmt: skip
    log = (work / "agent.log").open("w")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    ends: queue.Queue[list[str]] = queue.Queue()

    def read() -> None:  # one list of statuses per cycle, once its three turns were printed
        turn: list[str] = []
        for line in proc.stdout:
            log.write(line)
            m = OUTCOME.match(line)
            if m:
                turn.append(m.group(2))
            elif line.startswith("  cycle failed"):
                turn = ["cycle failed"] * len(MODELS)
            if len(turn) == len(MODELS):
                ends.put(turn)
                turn = []

    threading.Thread(target=read, daemon=True).start()
    trace, statuses = Trace("agent (`cityagent agent run`)", "cycles", 100), Counter()
    try:
        for cycle in range(1, cycles + 1):
            statuses.update(ends.get(timeout=120))
            trace.add(cycle, proc.pid)
            append(cycle)  # before the next cycle starts: `interval` leaves the time
            if cycle % 20 == 0:
                print(f"  agent: {cycle} cycles, RSS {trace.rss[-1]:.1f} MiB, {dict(statuses)}", flush=True)
    finally:
        stop(proc)
        log.close()
    trace.notes["statuses"] = dict(statuses)
    gaps = np.diff(trace.t)  # a cycle's time, or the interval when the cycle was shorter (plus this script's append)
    first, last = float(gaps[:20].mean()), float(gaps[-20:].mean())
    trace.notes["cycle_s"] = {"first 20": round(first, 2), "last 20": round(last, 2)}
    return trace


# -- 3. the MQTT listener ----------------------------------------------------------------------------------------


def written(hub_dir: Path, seen: dict[Path, int]) -> int:
    """Readings the listener has written so far: rows of new part files plus dead letters."""
    import pyarrow.parquet as pq

    for table in FEEDS:
        for part in (hub_dir / table).rglob("*.parquet"):
            if part not in seen:
                seen[part] = pq.read_metadata(part).num_rows
    rejected = sum(len(p.read_bytes().splitlines()) for p in (hub_dir / "_rejected").glob("*.jsonl"))
    return sum(seen.values()) + rejected


def soak_listener(env: dict[str, str], work: Path, hub_dir: Path, readings: int, batch: int) -> Trace:
    """`cityagent hub listen` while this process publishes ``readings`` readings; RSS after each ``batch``."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    feed, prefix = Feed(hub_dir), f"soak-{uuid.uuid4().hex[:8]}"
    seen: dict[Path, int] = {}
    base = written(hub_dir, seen)
    cmd = [*CLI, "hub", "listen", "--hub", str(hub_dir), "--topic", f"{prefix}/+/readings", "--flush-seconds", "1"]
    proc, _ = start(cmd, work / "listen.log", r"^listening on ", env)
    pub = mqtt.Client(CallbackAPIVersion.VERSION2)
    pub.connect("127.0.0.1", 1883)
    pub.loop_start()
    trace = Trace("listener (`cityagent hub listen`)", "readings", 100_000)
    sent, step = 0, 0

    def caught_up(target: int) -> None:
        deadline = time.monotonic() + 120
        while written(hub_dir, seen) - base < target:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"the listener wrote {written(hub_dir, seen) - base} of {target} readings")
            time.sleep(0.1)

    try:
        trace.add(0, proc.pid)
        while sent < readings:
            goal = sent + batch
            while sent < goal:
                # at most two chunks ahead of the hub: Mosquitto drops what a slow non-durable subscriber has not
                # taken past max_queued_messages (1000 messages), and a lost reading would stall the count
                ahead = sent
                for _ in range(CHUNK_STEPS):
                    _, step_readings = feed.at(step)
                    for table, objs in step_readings.items():
                        info = pub.publish(f"{prefix}/{table}/readings", json.dumps(objs), qos=1)
                        sent += len(objs)
                    step += 1
                info.wait_for_publish(30)
                caught_up(ahead)
            caught_up(sent)
            trace.add(sent, proc.pid)
            print(f"  listener: {sent} readings ({step} steps), RSS {trace.rss[-1]:.1f} MiB", flush=True)
    finally:
        pub.disconnect()
        pub.loop_stop()
        stop(proc)
    days = step * feed.step / np.timedelta64(1, "D")
    trace.notes["days"] = round(float(days), 1)
    return trace


# -- the run -----------------------------------------------------------------------------------------------------


def setup(work: Path) -> tuple[dict[str, str], Path]:
    """A fresh home with the demo's three champions promoted; (environment for the processes, hub directory)."""
    home = work / "home"
    env = os.environ | {"CITYAGENT_HOME": str(home), "MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}"}
    env.pop("RAY_ADDRESS", None)
    cmd = [*CLI, "demo", "--workers", "0", "--epochs", "1"]
    with (work / "demo.log").open("w") as log:
        subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, check=True, timeout=600)
    return env, home / "hub"


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| process | work | RSS warmed up | RSS at end | peak | growth per unit (least squares) | fitted over span "
        "| scatter | verdict |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        per = f"{r['per']:,} {r['unit']}".replace("100,000", "100k")
        lines.append(
            f"| {r['name']} | {r['end_at']:,.0f} {r['unit']} (from {r['warm_at']:,.0f}) | {r['warm_mib']:.1f} MiB "
            f"| {r['end_mib']:.1f} MiB | {r['peak_mib']:.1f} MiB | {r['slope_mib']:+.2f} MiB / {per} "
            f"| {r['fitted_mib']:+.1f} MiB | {r['scatter_mib']:.1f} MiB | {r['verdict']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes: ~1.2 min instead of ~6")
    for name, (full, quick) in SIZES.items():
        ap.add_argument(f"--{name}", type=int, help=f"default {full:,} ({quick:,} with --quick)")
    ap.add_argument("--interval", type=float, default=0.6, help="agent loop interval, s (a cycle: ~0.4 s to ~1.7 s)")
    ap.add_argument("--warmup", type=float, default=0.2, help="share of each run left out of the slope")
    ap.add_argument("--only", nargs="+", choices=["serving", "agent", "listener"], help="run only these")
    ap.add_argument("--json", type=Path, help="write the samples and summaries here")
    ap.add_argument("--keep", action="store_true", help="keep the temporary home (its path is printed)")
    args = ap.parse_args(argv)
    size = {k: getattr(args, k) or v[args.quick] for k, v in SIZES.items()}
    only = set(args.only or ["serving", "agent", "listener"])

    work = Path(tempfile.mkdtemp(prefix="cityagent-soak-"))
    print(f"work dir {work}; sizes {size}", flush=True)
    t0 = time.monotonic()
    traces: list[Trace] = []
    failed: list[str] = []

    def phase(name: str, measure: Callable[[], Trace]) -> None:
        if name not in only:
            return
        try:
            traces.append(measure())
        except Exception as e:  # the other processes are still measured; the summary says what failed
            failed.append(f"{name}: {type(e).__name__}: {e}")
            print(f"  {failed[-1]}", flush=True)

    try:
        env, hub_dir = setup(work)
        listen_hub = work / "listen-hub"
        shutil.copytree(hub_dir, listen_hub)  # the listener's own copy: the agent appends to the other
        print(f"set up in {time.monotonic() - t0:.0f} s", flush=True)
        if only & {"serving", "agent"}:
            serve = [*CLI, "serve", *(a for m in MODELS for a in ("-m", f"{m}@champion")), "--port", "0",
                     "--metrics-port", "0", "--poll-interval", "1"]  # fmt: skip
            server, m = start(serve, work / "serve.log", r" on 127\.0\.0\.1:(\d+)\s*$", env)
            address = f"127.0.0.1:{m.group(1)}"
            try:
                phase("serving", lambda: soak_serving(address, server.pid, hub_dir, size["requests"], size["every"]))
                phase("agent", lambda: soak_agent(env, work, hub_dir, address, size["cycles"], args.interval))
            finally:
                stop(server)
        phase("listener", lambda: soak_listener(env, work, listen_hub, size["readings"], size["batch"]))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    results = [t.summary(args.warmup) for t in traces]
    print(table(results))
    for r in results:
        extra = {k: v for k, v in r.items() if k in ("outcomes", "statuses", "days", "seconds", "cycle_s")}
        print(f"- {r['name']}: {extra}")
    load = os.getloadavg()
    print(f"total {time.monotonic() - t0:.0f} s; load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")
    for line in failed:
        print(f"FAILED {line}")
    if args.json:
        args.json.write_text(json.dumps({"sizes": size, "results": results, "samples": [t.__dict__ for t in traces]}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
