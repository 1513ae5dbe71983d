"""The build parameters every model receives from the training engine, and their checks.

The engine passes the same dict to every builder: ``num_nodes, in_features, input_len, horizon,
target_channel, adjacency, grid, quantiles``. Each check raises ConfigError in one sentence.
"""

from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import numpy as np

from cityagent.errors import ConfigError

COMMON_PARAMS = (
    "num_nodes",
    "in_features",
    "input_len",
    "horizon",
    "target_channel",
    "adjacency",
    "grid",
    "quantiles",
)


def needs_grid(model: str, alternative: str = "") -> ConfigError:
    """The error for a grid model on nodes that are not a complete grid of cells."""
    return ConfigError(
        f"{model} needs the task's grid (rows, cols) of cells: give the hub's zones integer row and col columns, one "
        'zone per cell of a complete grid (or add "extra": {"grid": [rows, cols]} to hub.json with the zones listed '
        f"row by row){alternative}."
    )


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}; fix the task or model config.")
    return int(value)


def check_common(params: dict[str, Any]) -> dict[str, Any]:
    """Validate and normalise the common params present in ``params``; other keys pass through unchanged."""
    out = dict(params)
    for key in ("num_nodes", "in_features", "input_len", "horizon"):
        if key in out:
            out[key] = _positive_int(key, out[key])
    if "target_channel" in out:
        tc, f = out["target_channel"], out.get("in_features")
        if isinstance(tc, bool) or not isinstance(tc, int | np.integer) or tc < 0 or (f is not None and tc >= f):
            raise ConfigError(f"target_channel must be an integer in [0, in_features={f}), got {tc!r}.")
        out["target_channel"] = int(tc)
    n = out.get("num_nodes")
    if out.get("adjacency") is not None:
        adj = np.asarray(out["adjacency"], dtype=np.float64)
        if adj.ndim != 2 or adj.shape[0] != adj.shape[1] or (n is not None and adj.shape[0] != n):
            raise ConfigError(f"adjacency must be a num_nodes×num_nodes ({n}×{n}) matrix, got shape {adj.shape}.")
        if not np.isfinite(adj).all() or (adj < 0).any():
            raise ConfigError("adjacency must hold finite non-negative weights; convert distances to weights first.")
        out["adjacency"] = adj
    if out.get("grid") is not None:
        grid = tuple(int(g) for g in out["grid"])
        if len(grid) != 2 or min(grid) < 1 or (n is not None and grid[0] * grid[1] != n):
            raise ConfigError(f"grid must be (rows, cols) with rows*cols == num_nodes={n}, got {out['grid']!r}.")
        out["grid"] = grid
    if out.get("quantiles") is not None:
        out["quantiles"] = check_quantiles(out["quantiles"])
    return out


def check_quantiles(quantiles: Sequence[float]) -> tuple[float, ...]:
    """Quantile levels must be strictly increasing inside (0, 1), e.g. ``(0.1, 0.5, 0.9)``."""
    qs = tuple(float(q) for q in quantiles)
    if not qs or any(not 0.0 < q < 1.0 for q in qs) or any(a >= b for a, b in pairwise(qs)):
        raise ConfigError(
            f"quantiles (train.quantiles) must be strictly increasing levels in (0, 1), e.g. [0.1, 0.5, 0.9]; "
            f"got {list(quantiles)!r}."
        )
    return qs


def check_frames(frames: Sequence[int] | None, input_len: int, name: str = "frames") -> tuple[int, ...]:
    """Resolve input time indices (negative ones count from the end); None means every frame.

    Args:
        frames: indices into the input window's time axis, e.g. ``(-1, -2, -3)`` for the closeness frames.
        input_len: T_in, the length of the input window.
        name: the parameter's name, for the error message.
    """
    if frames is None:
        return tuple(range(input_len))
    out = []
    for t in frames:
        if isinstance(t, bool) or not isinstance(t, int | np.integer) or not -input_len <= t < input_len:
            raise ConfigError(f"{name} holds {t!r}, which is not a time index in an input window of {input_len}.")
        out.append(int(t) % input_len)
    if len(set(out)) != len(out):
        raise ConfigError(f"{name} lists a frame twice: {tuple(frames)!r}.")
    return tuple(out)
