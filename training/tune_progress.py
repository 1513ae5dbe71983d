"""What a sweep prints while it runs: one line per trial as it starts, ends or fails, and nothing of Ray Tune's own
(its settings box, status tables and checkpoint-frequency warnings); errors Ray logs still show."""

import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ray.tune import Callback

# Ray Tune's newer output engine prints its settings box and result paths even at verbose=0; the older one is silent
# there, and the trial lines below replace its tables. The snapshot warning is about Tune's own checkpoint cadence,
# which a sweep of short epochs always trips and a user cannot act on.
QUIET_ENV = {"RAY_AIR_NEW_OUTPUT": "0", "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0"}


@contextmanager
def quiet_tune_output() -> Iterator[None]:
    """Ray Tune silent for the duration, unless the environment already says otherwise."""
    ours = {k: v for k, v in QUIET_ENV.items() if k not in os.environ}
    os.environ.update(ours)
    try:
        yield
    finally:
        for key in ours:
            os.environ.pop(key, None)


def settings(config: dict[str, Any]) -> str:
    """``lr 0.000395 · hidden_size 32``: a trial's sampled values by their last key part."""

    def show(value: Any) -> str:
        return f"{value:.3g}" if isinstance(value, float) else str(value)

    return " · ".join(f"{key.rsplit('.', 1)[-1]} {show(value)}" for key, value in sorted(config.items()))


class TrialLines(Callback):
    """Prints ``trial 2/4 finished after 2 of 8 epochs (stopped early): best val_loss 0.0321`` as trials go.

    Args:
        samples: trials in the sweep.
        monitor: the metric the sweep ranks by.
        max_epochs: epochs a trial runs unless stopped early (by ASHA or its own patience); None for one-fit
            trials (tree models), whose lines leave epochs out.
        mode: ``min`` when lower ``monitor`` is better (losses), ``max`` when higher is (MAP@K).
        say: where the lines go (default: print).
    """

    def __init__(
        self,
        samples: int,
        monitor: str,
        max_epochs: int | None,
        mode: str = "min",
        say: Callable[[str], None] | None = None,
    ) -> None:
        # None: print, looked up at each line; Ray pickles the callback, and a replaced builtins.print will not pickle
        self.samples, self.monitor, self.max_epochs, self._say = samples, monitor, max_epochs, say
        self.sign = 1.0 if mode == "min" else -1.0  # compare sign * value: lower is better either way
        self.numbers: dict[str, int] = {}
        self.best: dict[str, float] = {}  # trial id → its best monitored value so far
        self.finished: list[float] = []

    def say(self, line: str) -> None:
        (self._say or print)(line)

    def _name(self, trial: Any) -> str:
        n = self.numbers.setdefault(trial.trial_id, len(self.numbers) + 1)
        return f"trial {n}/{self.samples}"

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.say(f"{self._name(trial)} started: {settings(trial.config or {})}")

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        value = result.get(self.monitor)
        if isinstance(value, int | float) and math.isfinite(value):
            known = self.best.get(trial.trial_id)
            better = known is None or self.sign * value < self.sign * known
            self.best[trial.trial_id] = value if better else known

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        head = f"{self._name(trial)} finished"
        if self.max_epochs is not None:
            epochs = int((trial.last_result or {}).get("training_iteration", 0))
            early = " (stopped early)" if 0 < epochs < self.max_epochs else ""
            head += f" after {epochs} of {self.max_epochs} epochs{early}"
        best = self.best.get(trial.trial_id)
        if best is None:
            self.say(head)
            return
        lead = " (best so far)" if self.finished and all(self.sign * (best - o) < 0 for o in self.finished) else ""
        self.finished.append(best)
        self.say(f"{head}: {'best ' if self.max_epochs is not None else ''}{self.monitor} {best:.4g}{lead}")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        try:
            trace = trial.get_error() or ""
        except Exception:  # the error file is Ray's to keep; a line without it still says the trial failed
            trace = ""
        lines = [line.strip() for line in str(trace).splitlines() if line.strip()]
        reason = lines[-1][:300] if lines else "see Ray's log above"
        where = f" (trace: {trial.error_file})" if getattr(trial, "error_file", None) else ""
        self.say(f"{self._name(trial)} failed: {reason}{where}")
