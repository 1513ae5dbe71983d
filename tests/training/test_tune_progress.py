"""What a sweep prints as it runs: one line per trial, and Ray Tune's own output off unless the user asked for it."""

import os
from types import SimpleNamespace

from cityagent.training.tune_progress import QUIET_ENV, TrialLines, quiet_tune_output, settings


def trial(tid: str, epochs: int = 0, error: str | None = None) -> SimpleNamespace:
    return SimpleNamespace(
        trial_id=tid,
        config={"train.lr": 0.000394, "model.params.hidden_size": 32},
        last_result={"training_iteration": epochs},
        get_error=lambda: error,
        error_file=f"/ray/results/{tid}/error.txt" if error else None,
    )


def test_one_line_per_trial_as_it_starts_ends_or_fails():
    lines: list[str] = []
    cb = TrialLines(samples=3, monitor="val_loss", max_epochs=4, say=lines.append)
    a, b, c = trial("a", epochs=4), trial("b", epochs=2), trial("c", error="Traceback ...\nValueError: bad width")
    for t in (a, b, c):
        cb.on_trial_start(0, [], t)
    for epoch, value in enumerate((0.5, 0.3, 0.4), 1):
        cb.on_trial_result(0, [], a, {"val_loss": value, "training_iteration": epoch})
    cb.on_trial_result(0, [], b, {"val_loss": 0.2, "training_iteration": 1})
    cb.on_trial_complete(0, [], a)
    cb.on_trial_complete(0, [], b)
    cb.on_trial_error(0, [], c)
    assert lines == [
        "trial 1/3 started: hidden_size 32 · lr 0.000394",
        "trial 2/3 started: hidden_size 32 · lr 0.000394",
        "trial 3/3 started: hidden_size 32 · lr 0.000394",
        "trial 1/3 finished after 4 of 4 epochs: best val_loss 0.3",
        "trial 2/3 finished after 2 of 4 epochs (stopped early): best val_loss 0.2 (best so far)",
        "trial 3/3 failed: ValueError: bad width (trace: /ray/results/c/error.txt)",
    ]


def test_settings_name_the_searched_keys_by_their_last_part():
    assert (
        settings({"train.weight_decay": 1.79e-06, "model.params.dropout": 0.1}) == "dropout 0.1 · weight_decay 1.79e-06"
    )


def test_ray_tune_is_quiet_for_the_sweep_only_and_a_users_setting_wins(monkeypatch):
    monkeypatch.delenv("RAY_AIR_NEW_OUTPUT", raising=False)
    monkeypatch.setenv("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "5")
    with quiet_tune_output():
        assert os.environ["RAY_AIR_NEW_OUTPUT"] == QUIET_ENV["RAY_AIR_NEW_OUTPUT"]
        assert os.environ["TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S"] == "5"
    assert "RAY_AIR_NEW_OUTPUT" not in os.environ
    assert os.environ["TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S"] == "5"


def test_a_sweep_ranked_by_a_higher_is_better_metric_of_one_fit_trials():
    lines: list[str] = []
    cb = TrialLines(samples=2, monitor="val_map", max_epochs=None, mode="max", say=lines.append)
    a, b = trial("a", epochs=1), trial("b", epochs=1)
    cb.on_trial_result(0, [], a, {"val_map": 0.10})
    cb.on_trial_result(0, [], b, {"val_map": 0.12})
    cb.on_trial_complete(0, [], a)
    cb.on_trial_complete(0, [], b)
    assert lines == ["trial 1/2 finished: val_map 0.1", "trial 2/2 finished: val_map 0.12 (best so far)"]
