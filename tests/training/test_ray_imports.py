"""What Ray's processes that never train have to import: each import there is seconds on every run or trial.

The Train controller unpickles ``train_loop_config`` (so the stop flag's module); a Tune trial that starts a Ray
Train run imports ``tune_trial`` and hands ``ray_worker.train_worker`` on. None of them may load Lightning, and the
stop flag not even torch. (tests/training/test_ray.py checks the controller of a real run from its import log.)
"""

import subprocess
import sys

import pytest

LOADED = "import sys; import {module}; print(sorted(m for m in ('torch', 'lightning') if m in sys.modules))"


@pytest.mark.parametrize(
    ("module", "loaded"),
    [
        ("cityagent.training.stop_flag", "[]"),
        ("cityagent.training.ray_worker", "[]"),
        ("cityagent.training.tune_trial", "['torch']"),  # the models registry, to check a trial's config
    ],
)
def test_modules_of_processes_that_do_not_train_leave_lightning_out(module, loaded):
    done = subprocess.run(
        [sys.executable, "-c", LOADED.format(module=module)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == loaded, f"importing {module} loads {done.stdout.strip()}"
