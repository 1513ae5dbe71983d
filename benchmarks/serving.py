"""Serving speed: the OIP server under 1/8/32/64 concurrent tritonclient clients (batch 1) against raw ONNX Runtime
in-process on the same inputs, ONNX Runtime vs torch eager, and the server's RSS over a 60-second run.

    python benchmarks/serving.py --write BENCHMARKS.md

For each model (default: STID, our traffic champion, and the heavier GRU) the server runs as its own process
(`cityagent serve`, configs/serving.yaml defaults); the clients are tritonclient.grpc.aio clients in this process,
one channel each, closed loop (next request when the last answered). At one client it also measures the stock
blocking tritonclient and the gRPC floor: a no-op OIP server (its own process) that answers every ModelInfer with a
canned response of the same size, which is what transport alone costs on this machine.
Prints the Markdown section and, with --write, replaces the "## Serving" section of that file.
"""

import argparse
import asyncio
import datetime as dt
import io
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import psutil
import torch
import tritonclient.grpc as tc
from tritonclient.grpc.aio import InferenceServerClient

from cityagent.models.registry import build_model

NAME = "bench"
RUN_SERVE = "import typer; from cityagent.agent.cli_serve import serve; typer.run(serve)"


def export(model: torch.nn.Module, shape: tuple[int, ...], path: Path, meta: dict) -> None:
    """Legacy exporter, dynamic batch, task facts as JSON metadata_props (as cityagent.training does)."""
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (torch.zeros(1, *shape),), buf, dynamo=False, opset_version=17, input_names=["x"],
            output_names=["y"], dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
        )  # fmt: skip
    proto = onnx.load_from_string(buf.getvalue())
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=json.dumps(value))
    path.write_bytes(proto.SerializeToString())


FLOOR_SERVER = """
import asyncio, sys
import grpc, numpy as np
from cityagent.serving.proto import inference_pb2 as pb, inference_pb2_grpc as pbg
answer = pb.ModelInferResponse(model_name=sys.argv[2], model_version="1")
answer.outputs.add(name="y", datatype="FP32", shape=[1, *map(int, sys.argv[3].split(","))])
answer.raw_output_contents.append(np.zeros([int(d) for d in sys.argv[3].split(",")], np.float32).tobytes())
class Canned(pbg.GRPCInferenceServiceServicer):
    async def ModelInfer(self, request, context):
        return answer
async def main():
    server = grpc.aio.server()
    pbg.add_GRPCInferenceServiceServicer_to_server(Canned(), server)
    print(server.add_insecure_port("127.0.0.1:" + sys.argv[1]), flush=True)
    await server.start()
    await server.wait_for_termination()
asyncio.run(main())
"""


def make_windows(shape: tuple[int, ...], calendar: bool, count: int = 64) -> list[np.ndarray]:
    """Random speeds; with `calendar`, the last 8 channels are a valid time of day and day-of-week one-hot
    (what STID reads), consecutive 5-minute steps."""
    rng = np.random.default_rng(0)
    windows = []
    for _ in range(count):
        w = rng.uniform(0, 80, size=(1, *shape)).astype(np.float32)
        if calendar:
            t, start, day = shape[0], int(rng.integers(0, 288 - shape[0])), int(rng.integers(0, 7))
            w[0, :, :, -8] = ((start + np.arange(t)) / 288)[:, None]
            w[0, :, :, -7:] = 0
            w[0, :, :, -7 + day] = 1
        windows.append(w)
    return windows


def quantiles_ms(latencies_s: list[float]) -> tuple[float, float]:
    q = np.quantile(np.asarray(latencies_s) * 1e3, [0.5, 0.99])
    return float(q[0]), float(q[1])


def time_calls(call, windows: list[np.ndarray], n: int, warm: int = 20, offset: int = 0) -> list[float]:
    for w in windows[:warm]:
        call(w)
    out = []
    for i in range(offset, offset + n):
        t = time.perf_counter()
        call(windows[i % len(windows)])
        out.append(time.perf_counter() - t)
    return out


def raw_ort(session: ort.InferenceSession, windows: list[np.ndarray], clients: int, seconds: float) -> dict:
    """`clients` threads calling one in-process session (batch 1) for `seconds`: the no-network floor."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    stop = time.perf_counter() + seconds

    def loop(k: int) -> None:
        i = k
        while time.perf_counter() < stop:
            t = time.perf_counter()
            session.run(None, {"x": windows[i % len(windows)]})
            latencies[k].append(time.perf_counter() - t)
            i += clients

    start = time.perf_counter()
    threads = [threading.Thread(target=loop, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flat = [x for lat in latencies for x in lat]
    return {"n": len(flat), "rps": len(flat) / (time.perf_counter() - start), "p": quantiles_ms(flat)}


async def served(address: str, windows: list[np.ndarray], clients: int, seconds: float) -> dict:
    """`clients` tritonclient aio clients in a closed loop for `seconds`; every answer is checked for shape."""
    inputs = []
    for w in windows:
        tensor = tc.InferInput("x", list(w.shape), "FP32")
        tensor.set_data_from_numpy(w)
        inputs.append(tensor)
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds

    async def loop(k: int) -> None:
        nonlocal errors
        client = InferenceServerClient(address)
        i = k
        try:
            while time.perf_counter() < stop:
                t = time.perf_counter()
                try:
                    result = await client.infer(NAME, [inputs[i % len(inputs)]])
                    assert result.as_numpy("y").shape[0] == 1
                    latencies.append(time.perf_counter() - t)
                except Exception:
                    errors += 1
                i += clients
        finally:
            await client.close()

    start = time.perf_counter()
    await asyncio.gather(*(loop(k) for k in range(clients)))
    return {"n": len(latencies), "errors": errors, "rps": len(latencies) / (time.perf_counter() - start),
            "p": quantiles_ms(latencies)}  # fmt: skip


class BlockingClient:
    """The stock blocking tritonclient, one request at a time (what a simple city service would use)."""

    def __init__(self, address: str, windows: list[np.ndarray], model: str = NAME) -> None:
        self.client, self.model = tc.InferenceServerClient(address), model
        self.inputs = []
        for w in windows:
            tensor = tc.InferInput("x", list(w.shape), "FP32")
            tensor.set_data_from_numpy(w)
            self.inputs.append(tensor)
        for i in range(30):
            self.client.infer(model, [self.inputs[i % len(self.inputs)]])

    def time(self, n: int, offset: int = 0) -> list[float]:
        out = []
        for i in range(offset, offset + n):
            t = time.perf_counter()
            self.client.infer(self.model, [self.inputs[i % len(self.inputs)]]).as_numpy("y")
            out.append(time.perf_counter() - t)
        return out

    def close(self) -> None:
        self.client.close()


def start_floor(out_shape: tuple[int, ...]) -> tuple[subprocess.Popen, str]:
    """A no-op OIP server in its own process (canned answer of the model's output size): transport and protobuf."""
    proc = subprocess.Popen(
        [sys.executable, "-c", FLOOR_SERVER, "0", NAME, ",".join(map(str, out_shape))], stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    return proc, f"127.0.0.1:{int(proc.stdout.readline())}"


PACE_S = 0.001  # about one local gRPC round trip


def one_client(session: ort.InferenceSession, address: str, windows: list[np.ndarray], out_shape, n: int) -> dict:
    """Raw ORT, our server and the no-op server, one request at a time, interleaved in rounds of 50 so that a
    slow spell of this shared machine hits all three alike."""
    floor_proc, floor_address = start_floor(out_shape)
    ours, floor = BlockingClient(address, windows), BlockingClient(floor_address, windows)
    found: dict[str, list[float]] = {"raw": [], "paced": [], "blocking": [], "floor": []}

    def paced(w: np.ndarray) -> None:  # time only the run, after the idle a served request's core has
        time.sleep(PACE_S)
        t = time.perf_counter()
        session.run(None, {"x": w})
        found["paced"].append(time.perf_counter() - t)

    try:
        for start in range(0, n, 50):
            found["raw"] += time_calls(lambda w: session.run(None, {"x": w}), windows, 50, warm=0, offset=start)
            for i in range(start, start + 50):
                paced(windows[i % len(windows)])
            found["blocking"] += ours.time(50, start)
            found["floor"] += floor.time(50, start)
    finally:
        ours.close()
        floor.close()
        floor_proc.terminate()
        floor_proc.wait(30)
    return found


def scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    found = {}
    for key in ("batch_size_sum", "batch_size_count", "requests_total"):
        m = re.search(rf'cityagent_serving_{key}{{model="{NAME}"}} ([0-9.e+]+)', text)
        found[key] = float(m.group(1)) if m else 0.0
    return found


def start_server(model_path: Path, log: Path) -> tuple[subprocess.Popen, int, int]:
    args = ["--model", f"{NAME}={model_path}", "--port", "0", "--metrics-port", "0", "--poll-interval", "0"]
    proc = subprocess.Popen([sys.executable, "-c", RUN_SERVE, *args], stderr=log.open("w"), cwd=Path.cwd())
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        text = log.read_text()
        port, metrics = re.search(r" on 127\.0\.0\.1:(\d+)\s*$", text, re.M), re.search(r"metrics on .*:(\d+)/", text)
        if port and metrics:
            return proc, int(port.group(1)), int(metrics.group(1))
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited: {text}")
        time.sleep(0.1)
    raise TimeoutError("the server did not start in 120 s")


def memory_run(address: str, pid: int, windows: list[np.ndarray], seconds: float) -> dict:
    """Load at 8 clients for `seconds` while sampling the server's RSS once a second."""
    proc, samples, done = psutil.Process(pid), [], threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append(proc.memory_info().rss / 2**20)
            done.wait(1.0)

    sampler = threading.Thread(target=sample)
    sampler.start()
    result = asyncio.run(served(address, windows, 8, seconds))
    done.set()
    sampler.join()
    tenth = max(1, len(samples) // 10)
    return {"start": samples[0], "peak": max(samples), "end": samples[-1], "first10": statistics.mean(samples[:tenth]),
            "last10": statistics.mean(samples[-tenth:]), "n": result["n"], "errors": result["errors"]}  # fmt: skip


def build(name: str, args: argparse.Namespace) -> tuple[torch.nn.Module, tuple[int, ...], bool]:
    """The model with random weights, its window shape, and whether it reads calendar channels (STID does)."""
    from cityagent.errors import ConfigError

    kw = {"num_nodes": args.nodes, "input_len": args.input_len, "horizon": args.horizon}
    try:
        model, features, calendar = build_model(name, in_features=args.features, **kw), args.features, False
    except ConfigError:  # value channels + time of day + 7 day-of-week channels
        model, features, calendar = build_model(name, in_features=args.features + 8, **kw), args.features + 8, True
    return model.eval(), (args.input_len, args.nodes, features), calendar


def bench_model(name: str, args: argparse.Namespace, memory: bool) -> dict:
    """Every measurement for one model, the server in its own process, raw ORT on the same windows in between."""
    model, shape, calendar = build(name, args)
    windows = make_windows(shape, calendar)
    work = Path(tempfile.mkdtemp(prefix="serving-bench-"))
    path = work / "model.onnx"
    meta = {"task": "bench", "nodes": [f"s{i}" for i in range(args.nodes)], "horizon": args.horizon}
    export(model, shape, path, meta)

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    with torch.no_grad():
        eager = time_calls(lambda w: model(torch.from_numpy(w)), windows, 300)
    in_process = time_calls(lambda w: session.run(None, {"x": w}), windows, 300)
    out = {"name": name, "shape": shape, "out": (args.horizon, args.nodes), "eager": eager, "ort": in_process}

    levels, mem = [], None
    proc, port, metrics_port = start_server(path, work / "server.log")
    address = f"127.0.0.1:{port}"
    try:
        asyncio.run(served(address, windows, 4, 1.0))  # warm-up
        # One client, side by side: raw ORT, the blocking client on our server, the same client on a no-op server.
        out["one"] = one_client(session, address, windows, out["out"], args.one_client_n)
        for clients in args.levels:
            before = scrape(metrics_port)
            s = asyncio.run(served(address, windows, clients, args.seconds))
            after = scrape(metrics_port)
            runs = after["batch_size_count"] - before["batch_size_count"]
            mean_batch = (after["batch_size_sum"] - before["batch_size_sum"]) / max(runs, 1)
            r = raw_ort(session, windows, clients, args.seconds)
            levels.append((clients, s, mean_batch, r))
            print(name, clients, s, round(mean_batch, 2), r, flush=True)
        if memory:
            mem = memory_run(address, proc.pid, windows, args.memory_seconds)
            print("memory", mem, flush=True)
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(work, ignore_errors=True)
    return out | {"levels": levels, "mem": mem}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["stid", "gru"], help="registry architectures (cityagent.models)")
    ap.add_argument("--nodes", type=int, default=207, help="N (207 = METR-LA's sensors)")
    ap.add_argument("--input-len", type=int, default=12)
    ap.add_argument("--features", type=int, default=2, help="value channels (STID also gets 8 calendar channels)")
    ap.add_argument("--horizon", type=int, default=12)
    ap.add_argument("--levels", type=int, nargs="+", default=[1, 8, 32, 64], help="concurrent clients")
    ap.add_argument("--seconds", type=float, default=8.0, help="per level and side")
    ap.add_argument("--one-client-n", type=int, default=1000, help="requests per side in the one-client comparison")
    ap.add_argument("--memory-seconds", type=float, default=60.0, help="RSS run, on the first model")
    ap.add_argument("--write", type=Path, help="Markdown file whose '## Serving' section is replaced")
    args = ap.parse_args(argv)

    torch.set_num_threads(1)
    results = [bench_model(name, args, memory=i == 0) for i, name in enumerate(args.models)]
    section = render(args, results)
    print(section)
    if args.write:
        write_section(args.write, section)
    return 0


def render(args: argparse.Namespace, results: list[dict]) -> str:
    load = os.getloadavg()
    machine = f"{os.cpu_count()} CPU {platform.machine()}, Python {sys.version.split()[0]}, ORT {ort.__version__}"
    lines = [
        "## Serving",
        "",
        "The OIP gRPC server (`cityagent serve`, configs/serving.yaml defaults: 2 ORT worker threads, 1 intra-op "
        "thread, dynamic batching up to 32 with no added delay, a lone request on an idle model run inline) against "
        "raw ONNX Runtime in-process (1 intra-op thread, the same windows), batch 1 per request, for STID (our traffic "
        "champion) and the heavier GRU, each with random weights on a METR-LA-sized input.",
        "",
        "```",
        "python benchmarks/serving.py --write BENCHMARKS.md",
        "```",
        "",
        "One client, one request at a time, the three sides interleaved in rounds of 50 (p50 / p99 ms):",
        "",
        "| model | input → output | raw ORT | raw ORT after 1 ms idle | served, blocking tritonclient | served − raw "
        "| gRPC floor (no-op server) | served − idle raw − floor |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        raw, pac, blk, flo = (quantiles_ms(r["one"][k]) for k in ("raw", "paced", "blocking", "floor"))
        lines.append(
            f"| {r['name']} | x {list((1, *r['shape']))} → y {list((1, *r['out']))} | {raw[0]:.2f} / {raw[1]:.2f} "
            f"| {pac[0]:.2f} / {pac[1]:.2f} | {blk[0]:.2f} / {blk[1]:.2f} | **{blk[0] - raw[0]:.2f}** "
            f"| {flo[0]:.2f} / {flo[1]:.2f} | {blk[0] - pac[0] - flo[0]:.2f} |"
        )
    lines += [
        "",
        "A served request runs on a core that just sat idle for a network round trip, and on this VM a 1-thread ORT "
        "run after 1 ms of idle is measurably slower than back to back (cold caches, a halted vCPU waking up), so the "
        "middle column is the fairer baseline for what the server itself adds; the target is judged against the "
        "back-to-back one all the same. What is left after the floor is not server code (its Python costs ~0.07 ms a "
        "request, ORT excluded, in-process): the same extra appears when a bare grpc.aio server runs a numpy job of "
        "the same size (`python benchmarks/grpc_compute.py`, section below).",
    ]
    lines += [
        "",
        "Concurrent tritonclient.grpc.aio clients, closed loop, against raw ORT with one thread per client:",
        "",
        "| model | clients | served p50 ms | served p99 ms | served req/s | mean batch | errors "
        "| raw ORT p50 ms | raw ORT p99 ms | raw ORT req/s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for clients, s, mean_batch, o in r["levels"]:
            lines.append(
                f"| {r['name']} | {clients} | {s['p'][0]:.2f} | {s['p'][1]:.2f} | {s['rps']:.0f} | {mean_batch:.1f} "
                f"| {s['errors']} | {o['p'][0]:.2f} | {o['p'][1]:.2f} | {o['rps']:.0f} |"
            )
    lines += ["", "| batch-1 in-process, 1 thread | p50 ms | p99 ms |", "|---|---|---|"]
    for r in results:
        e, o = quantiles_ms(r["eager"]), quantiles_ms(r["ort"])
        lines += [f"| {r['name']}, torch eager | {e[0]:.3f} | {e[1]:.3f} |",
                  f"| {r['name']}, ONNX Runtime | {o[0]:.3f} | {o[1]:.3f} |"]  # fmt: skip
    lines.append("")
    for r in results:
        raw, blk, flo = (quantiles_ms(r["one"][k])[0] for k in ("raw", "blocking", "floor"))
        first, last = r["levels"][0], r["levels"][-1]
        verdict = "met" if blk - raw <= 0.5 else "not met"
        lines.append(
            f"- {r['name']}: one client pays {blk - raw:.2f} ms p50 over raw ORT (target ≤ 0.5 ms: {verdict}), "
            f"{flo:.2f} ms of it the gRPC floor; from {first[0]} to {last[0]} clients the server goes from "
            f"{first[1]['rps']:.0f} to {last[1]['rps']:.0f} req/s ({last[1]['rps'] / first[1]['rps']:.2f}×), "
            f"{last[2]:.1f} requests per ORT run."
        )
    mem = results[0]["mem"]
    lines += [
        "",
        f"Server RSS over a {args.memory_seconds:.0f}-second run of {results[0]['name']} at 8 clients ({mem['n']} "
        f"requests, {mem['errors']} errors): start {mem['start']:.0f} MiB, peak {mem['peak']:.0f} MiB, end "
        f"{mem['end']:.0f} MiB; mean of the first tenth {mem['first10']:.0f} MiB vs last tenth "
        f"{mem['last10']:.0f} MiB.",
        "",
        f"Measured {dt.date.today()} on {machine}; load average at the end {load[0]:.1f} / {load[1]:.1f} / "
        f"{load[2]:.1f}. Server, clients and raw ORT share the same 2 cores.",
    ]
    return "\n".join(lines) + "\n"


def write_section(path: Path, section: str) -> None:
    """Replace the '## Serving' section (up to the next '## ' heading) or append it; other sections stay as they are."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    pattern = re.compile(r"^## Serving\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: section + "\n", text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
