"""What a protocol hands to training: windows per split, scalers, graph, masks and provenance notes."""

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cityagent.hub.scalers import Scaler
from cityagent.hub.windows import Split, WindowSpec


@dataclass
class TaskData:
    """Train/val/test windows over shared raw-unit arrays, plus everything needed to score and export a model.

    ``x`` arrays hold raw units; ``x_scaler`` (value channels; calendar channels pass through) and ``y_scaler``
    are fitted as the protocol says, so the exported model can scale inside its graph. ``eval_mask [N]`` marks
    the nodes that count in metrics. ``notes`` say where a protocol departs from strict practice (leaks, fills).
    """

    train: Split
    val: Split  # may be empty
    test: Split
    x_scaler: Scaler
    y_scaler: Scaler
    nodes: list[str]
    adjacency: np.ndarray | None  # [N, N] float32
    feature_names: list[str]
    input_len: int
    horizon: int
    step: str
    protocol: str
    eval_mask: np.ndarray  # [N] bool
    extra: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def spec(self) -> WindowSpec:
        return self.train.spec

    def counts(self) -> dict[str, int]:
        """Samples per split."""
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}
