"""benchmarks/ray_startup.py reads a Ray session's import logs: each actor's top-level imports, children not twice."""

import importlib.util
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
spec = importlib.util.spec_from_file_location("ray_startup", BENCHMARKS / "ray_startup.py")
ray_startup = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ray_startup)

HEADER = "import time: self [us] | cumulative | imported package\n"


def test_an_actors_top_level_imports_are_summed_once_and_pooled_workers_are_left_out(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    controller = (
        ":job_id:01000000\n:actor_name:TrainController\n"
        + HEADER
        + "import time:       100 |        100 |     torch._C\n"  # a child: inside torch's cumulative time
        + "import time:       400 |    1500000 | torch\n"
        + "import time:       300 |     500000 |   ray.train.torch\n"  # a child of the next line
        + "import time:       200 |     700000 | ray.train.torch.config\n"
        + "a line of Ray's own logging\n"
    )
    (logs / "worker-aa-01000000-1.err").write_text(controller)
    (logs / "worker-bb-01000000-2.err").write_text(":job_id:01000000\n:actor_name:StopFlag\n" + HEADER)
    (logs / "worker-cc-ffffffff-3.err").write_text(HEADER + "import time:       1 |    9000000 | numpy\n")  # pooled
    (logs / "worker-dd-01000000-4.err").write_text(controller)  # a second controller (a second Tune trial)
    seen = ray_startup.actor_imports(tmp_path)
    assert seen == {"TrainController": [2.2, 2.2], "StopFlag": [0.0]}
