"""One line per epoch while a deep model trains, said by the driver for in-process and Ray runs alike.

Lightning's own bar stays off: on Ray it would draw in every worker's log, which the driver does not show, and in a
notebook without ipywidgets it cannot draw at all. The line goes through rich, which renders in a terminal, a log
file and Jupyter.
"""

import math
import time
from collections.abc import Callable

from rich.console import Console

_console = Console()


def _say(line: str) -> None:
    _console.print(line, highlight=False, soft_wrap=True)


class EpochProgress:
    """Called with each epoch's metrics row (as ``on_epoch``); says the epoch, its losses and the time left.

    Args:
        model: the model's name, for the line.
        max_epochs: ``train.max_epochs`` (early stopping may end sooner, so the time left is an upper bound).
        monitor: the metric early stopping watches (``val_loss``, or ``train_loss`` without a validation split).
        say: where the line goes (default: stdout through rich).
    """

    def __init__(self, model: str, max_epochs: int, monitor: str, say: Callable[[str], None] | None = None) -> None:
        self.model, self.max_epochs, self.monitor = model, max_epochs, monitor
        self.say = say or _say
        self.start = time.perf_counter()
        self.best = math.inf

    def __call__(self, row: dict[str, float]) -> None:
        done = int(row.get("epoch", 0)) + 1
        parts = [f"{self.model} epoch {done}/{self.max_epochs}"]
        for key in ("train_loss", "val_loss", "val_mae"):
            if key not in row:
                continue
            best = key == self.monitor and math.isfinite(row[key]) and row[key] < self.best
            if best:
                self.best = row[key]
            parts.append(f"{key} {row[key]:.4g}" + (" (best)" if best else ""))
        elapsed = time.perf_counter() - self.start
        left = elapsed / done * (self.max_epochs - done)
        timing = f"{elapsed:.0f} s" + (f", at most ~{left:.0f} s left" if done < self.max_epochs else "")
        self.say(" · ".join(parts) + f" · {timing}")


def both(*calls: Callable[[dict[str, float]], None]) -> Callable[[dict[str, float]], None]:
    """One ``on_epoch`` that calls each of ``calls`` in turn."""

    def call(row: dict[str, float]) -> None:
        for c in calls:
            c(row)

    return call
