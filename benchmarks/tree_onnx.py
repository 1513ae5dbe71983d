"""A table's tree model exported to ONNX: does ONNX Runtime forecast what scikit-learn does, and how fast?

    python benchmarks/tree_onnx.py                  # DiDi's gbrt_demand (~20 s to train), compared on test
    python benchmarks/tree_onnx.py --table chicago  # Chicago's calibrated risk_gbrt (~1 min)

Trains through ``cityagent.training.fit`` (so the export is the one `cityagent train` registers), then predicts
every test window one at a time with the fitted estimator and with the exported model in ONNX Runtime, in the
same process, alternating, and last asks ``cityagent serve`` (its own process) for each window over gRPC; reports
the largest difference from scikit-learn and the median time per window of each.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def main() -> int:
    os.environ.setdefault("CITYAGENT_HOME", tempfile.mkdtemp(prefix="cityagent-bench-"))
    from accuracy import DATASET, TABLES

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--table", choices=["didi-uctb", "chicago"], default="didi-uctb")
    args = ap.parse_args()
    label = {"didi-uctb": "GBRT demand", "chicago": "risk_gbrt (calibrated)"}[args.table]
    _, model_cfg, overrides = next(row for row in TABLES[args.table] if row[0] == label)

    from cityagent.home import home_dir
    from cityagent.training.config import load_config, read_yaml_tree
    from cityagent.training.evaluate import bundle_predictor, load_run
    from cityagent.training.fit import fit
    from cityagent.training.parity import ort_session
    from cityagent.training.task import load_task

    tree = read_yaml_tree(ROOT / "configs" / "datasets" / f"{DATASET[args.table]}.yaml")
    tree |= {k: v for k, v in read_yaml_tree(ROOT / "configs" / model_cfg).items() if k == "model"}
    tree["tracking"] = {"plots": False, "register_model": True, "experiment": "bench-tree-onnx"}
    result = fit(load_config(None, overrides, **tree))
    if not result.info["export"].startswith("done"):
        print(f"export failed: {result.info['export']}")
        return 1
    bundle, cfg, folder = load_run(result.run_id)
    sklearn = bundle_predictor(bundle, folder)
    onnx_file = home_dir() / "exports" / result.run_id / "model.onnx"
    session = ort_session(str(onnx_file))
    task, _ = load_task(cfg.task)
    times: dict[str, list[float]] = {"scikit-learn": [], "ONNX Runtime": []}
    diff = 0.0
    for i in range(len(task.test)):
        x = np.ascontiguousarray(task.test.batch(np.array([i]))[0], dtype=np.float32)  # raw units, batch 1
        t0 = time.perf_counter()
        want = sklearn(x)
        t1 = time.perf_counter()
        got = session.run(None, {"x": x})[0]
        t2 = time.perf_counter()
        times["scikit-learn"].append(t1 - t0)
        times["ONNX Runtime"].append(t2 - t1)
        diff = max(diff, float(np.abs(got - want).max()))
    gaps = {"scikit-learn": 0.0, "ONNX Runtime": diff}
    times["served over gRPC"], gaps["served over gRPC"] = served(onnx_file, task, sklearn)
    print(f"{len(task.test)} test windows, {onnx_file.stat().st_size / 2**20:.1f} MiB ONNX, {result.info['export']}")
    print(f"{label}: {result.run_id}")
    print("| predictor | ms per window (p50) | vs scikit-learn | max abs difference |")
    print("|---|---|---|---|")
    base = float(np.median(times["scikit-learn"]))
    for name, t in times.items():
        print(f"| {name} | {1e3 * np.median(t):.1f} | {np.median(t) / base:.2f}× | {gaps[name]:.2g} |")
    return 0


def served(onnx_file: Path, task, sklearn) -> tuple[list[float], float]:
    """Every test window asked one at a time of ``cityagent serve`` (its own process) with the stock blocking
    tritonclient, as a city service would: the times, and the largest difference from scikit-learn."""
    import tritonclient.grpc as tc

    from serving import NAME, start_server

    with tempfile.TemporaryDirectory() as folder:
        proc, port, _ = start_server(onnx_file, Path(folder) / "serve.log")
        try:
            with tc.InferenceServerClient(f"127.0.0.1:{port}") as client:
                out, diff = [], 0.0
                for i in [*range(10), *range(len(task.test))]:  # 10 warm-up requests
                    x = np.ascontiguousarray(task.test.batch(np.array([i]))[0], dtype=np.float32)
                    tensor = tc.InferInput("x", list(x.shape), "FP32")
                    tensor.set_data_from_numpy(x)
                    t0 = time.perf_counter()
                    got = client.infer(NAME, [tensor]).as_numpy("y")
                    out.append(time.perf_counter() - t0)
                    diff = max(diff, float(np.abs(got - sklearn(x)).max()))
        finally:
            proc.terminate()
            proc.wait(30)
    return out[10:], diff


if __name__ == "__main__":
    sys.exit(main())
