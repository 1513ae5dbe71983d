"""A model of your own on 2 Ray workers, which are other processes: one registered in a script's ``__main__`` (as in a
notebook), and one in a module that ``cityagent train ... model.module=...`` names.

Each runs in a process of its own, as a user's would (a test module is not ``__main__``, and its registry is not a new
shell's). Kept tiny (6 nodes, 1 epoch of 1 batch); still about a minute each on 2 cores, so only the ``__main__`` run
is in the default suite (the others: ``-m slow``).
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.own_models import NODE_MLP

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("shared_mlflow_store")]


QUICK = [
    "task.params.input_len=6",
    "task.params.horizon=3",
    "model.params={}",
    "train.max_epochs=1",
    "train.limit_train_batches=1",
    "train.max_failures=0",
]
FIT = """
import sys

from cityagent.training import fit

quick = {"task.params": {"input_len": 6, "horizon": 3}, "train.max_epochs": 1, "train.limit_train_batches": 1}
ray = {"train.workers": 2, "train.max_failures": 0}
result = fit(None, **quick, **ray, **{"task.hub": sys.argv[1], "model.name": "main_mlp"}, progress=False)
print("MODE", result.info["mode"], result.info["workers"], "EXPORT", result.info["export"])
"""


TUNE = """
import sys

from cityagent.training import tune

quick = {"task.params": {"input_len": 6, "horizon": 3}, "train.max_epochs": 1, "train.limit_train_batches": 1}
space = {"model.params.hidden": [4, 8]}  # the model's own hyperparameter, searched
best = tune(None, 2, space, **quick, **{"train.workers": 0, "task.hub": sys.argv[1], "model.name": "tuned_mlp"})
print("TRIALS", best.info.get("parent_run_id") is not None, "EXPORT", best.info["export"])
"""


def run(args: list[str], cwd: Path) -> str:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    return done.stdout


def test_a_model_registered_in_main_trains_on_two_ray_workers(tiny_hub, tmp_path):
    script = tmp_path / "notebook.py"
    script.write_text(NODE_MLP.format(name="main_mlp") + FIT)
    out = run([sys.executable, str(script), str(tiny_hub)], tmp_path)
    assert "MODE ray 2 EXPORT done: models:/traffic-" in out  # trained on Ray, exported with parity, registered


@pytest.mark.slow  # about a minute; model.module in-process: tests/models/test_user_models.py
def test_cli_trains_a_model_module_on_two_ray_workers(tiny_hub, tmp_path):
    (tmp_path / "my_models.py").write_text(NODE_MLP.format(name="module_mlp"))
    cli = shutil.which("cityagent", path=str(Path(sys.executable).parent)) or "cityagent"
    model = ["model.name=module_mlp", "model.module=my_models"]  # my_models.py in the working directory
    out = run([cli, "train", "traffic", "--hub", str(tiny_hub), "--workers", "2", *model, *QUICK], tmp_path)
    assert "trained module_mlp" in out and "export done: models:/traffic-" in out


@pytest.mark.slow  # half a minute; a model in __main__ reaching Ray processes is checked above
def test_a_sweep_of_a_model_registered_in_main_runs_its_trials_in_ray_processes(tiny_hub, tmp_path):
    """Tune's trials are Ray actors (other processes) even in-process: the notebook's model travels to each."""
    script = tmp_path / "notebook.py"
    script.write_text(NODE_MLP.format(name="tuned_mlp") + TUNE)
    out = run([sys.executable, str(script), str(tiny_hub)], tmp_path)
    assert "TRIALS True EXPORT done: models:/traffic-" in out, out[-2000:]
