"""What CPU work costs inside a grpc.aio handler on this machine, with no cityagent code involved.

    python benchmarks/grpc_compute.py

A bare grpc.aio OIP server (its own process) answers ModelInfer with a canned response, either at once ("no-op") or
after a fixed numpy job of a few milliseconds ("work"); the stock blocking tritonclient calls it one request at a
time, and the same job is timed in the client process between the two. If serving added nothing, work − no-op would
equal the job's own time; the difference is what running compute inside a gRPC server costs here (cache and
scheduler effects of the VM), the part of benchmarks/serving.py's one-client gap that no server code can remove.
"""

import argparse
import os
import subprocess
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # after the thread settings, which BLAS reads at import

SERVER = """
import asyncio, sys
import grpc, numpy as np
sys.path.insert(0, sys.argv[3])
from grpc_compute import job
from cityagent.serving.proto import inference_pb2 as pb, inference_pb2_grpc as pbg
answer = pb.ModelInferResponse(model_name="bench", model_version="1")
answer.outputs.add(name="y", datatype="FP32", shape=[1, 12, 207])
answer.raw_output_contents.append(np.zeros([1, 12, 207], np.float32).tobytes())
work = sys.argv[2] == "work"
class Canned(pbg.GRPCInferenceServiceServicer):
    async def ModelInfer(self, request, context):
        if work:
            job()
        return answer
async def main():
    server = grpc.aio.server()
    pbg.add_GRPCInferenceServiceServicer_to_server(Canned(), server)
    print(server.add_insecure_port("127.0.0.1:" + sys.argv[1]), flush=True)
    await server.start()
    await server.wait_for_termination()
asyncio.run(main())
"""

_A = np.random.default_rng(0).random((160, 160), dtype=np.float32)


def job() -> np.ndarray:
    """A few milliseconds of single-threaded numpy (the GIL is released inside, as in ONNX Runtime)."""
    x = _A
    for _ in range(40):
        x = (x @ _A) * 0.01
    return x


def served(mode: str, n: int) -> float:
    import tritonclient.grpc as tc

    here = os.path.dirname(os.path.abspath(__file__))
    proc = subprocess.Popen([sys.executable, "-c", SERVER, "0", mode, here], stdout=subprocess.PIPE, text=True)
    try:
        client = tc.InferenceServerClient(f"127.0.0.1:{int(proc.stdout.readline())}")
        x = np.zeros((1, 12, 207, 2), np.float32)
        tensor = tc.InferInput("x", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x)
        for _ in range(30):
            client.infer("bench", [tensor])
        times = []
        for _ in range(n):
            t = time.perf_counter()
            client.infer("bench", [tensor])
            times.append(time.perf_counter() - t)
        client.close()
        return float(np.median(times) * 1e3)
    finally:
        proc.terminate()
        proc.wait(30)


def local(n: int) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        job()
        times.append(time.perf_counter() - t)
    return float(np.median(times) * 1e3)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("-n", type=int, default=300, help="requests per side and round")
    args = ap.parse_args(argv)
    print("| round | no-op server p50 ms | work server p50 ms | job in-process p50 ms | work − no-op − job ms |")
    print("|---|---|---|---|---|")
    for r in range(args.rounds):
        noop, work, alone = served("noop", args.n), served("work", args.n), local(args.n)
        print(f"| {r + 1} | {noop:.2f} | {work:.2f} | {alone:.2f} | {work - noop - alone:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
