"""The driver's request that a Ray run stop after its epoch: a Ray actor of no CPU that the workers ask.

It lives in a module of its own that imports nothing heavy: Ray imports an actor's module in the actor's process,
and in every process that receives its handle, the Ray Train controller included (the handle travels in
``train_loop_config``). Defined beside the Lightning code, it made both of them import torch and Lightning, about
4 s each on 2 cores, before the run's workers were even started.
"""


class StopFlag:
    """Why the driver wants the run to stop, or None."""

    def __init__(self) -> None:
        self.why: str | None = None

    def set(self, why: str) -> None:
        self.why = why

    def get(self) -> str | None:
        return self.why
