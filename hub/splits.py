"""Chronological train/val/test splits by ratios: over time (windows inside each part) or over samples."""

import itertools
from collections.abc import Sequence
from typing import Literal

import numpy as np

from cityagent.errors import ConfigError, HubError
from cityagent.hub.windows import WindowSpec


def check_ratios(ratios: Sequence[float]) -> tuple[float, ...]:
    """Ratios as a tuple, or a ConfigError unless they are ≥ 0 and add up to 1."""
    r = tuple(float(v) for v in ratios)
    if not r or min(r) < 0 or abs(sum(r) - 1.0) > 1e-9:
        raise ConfigError(f"split ratios {list(ratios)} must be ≥ 0 and add up to 1, e.g. (0.7, 0.1, 0.2)")
    return r


def part_bounds(n: int, ratios: Sequence[float]) -> list[tuple[int, int]]:
    """``[start, end)`` of each part; boundaries at ``int(n * (r0 + ... + rk))`` as GSNet and UCTB compute them."""
    r = check_ratios(ratios)
    cuts = [0] + [int(sum(r[: k + 1]) * n) for k in range(len(r) - 1)] + [n]
    return list(itertools.pairwise(cuts))


def part_name(k: int, parts: int) -> str:
    """What part ``k`` of ``parts`` is: training first, test last, validation between (``part 1`` beyond three)."""
    names = {2: ("training", "test"), 3: ("training", "validation", "test")}.get(parts)
    return names[k] if names else f"part {k}"


def split_over_time(n_steps: int, spec: WindowSpec, ratios: Sequence[float]) -> list[np.ndarray]:
    """Anchors per part when the steps are cut first and windows are built inside each part (GSNet, T-GCN).

    The first ``spec.history`` steps of every part only feed inputs, so no window straddles a boundary.
    """
    bounds = part_bounds(n_steps, ratios)
    for k, ((s, e), r) in enumerate(zip(bounds, check_ratios(ratios), strict=True)):
        if r > 0 and e - s < spec.need():
            raise HubError(
                f"the hub has {n_steps} steps, so the {part_name(k, len(bounds))} split ({r:.0%}) gets {e - s}, "
                f"but one window needs {spec.need()} consecutive steps; use a longer hub, other ratios or a "
                "shorter window"
            )
    return [spec.anchors(s, e) for s, e in bounds]


def split_over_samples(
    anchors: np.ndarray, ratios: Sequence[float], rounding: Literal["cumulative", "tail_floor"] = "cumulative"
) -> list[np.ndarray]:
    """Cut one chronological list of windows into parts (EAST-Net, UCTB validation).

    Args:
        anchors: sample anchors in time order.
        ratios: part shares, adding up to 1.
        rounding: ``'cumulative'`` cuts at ``int(n * (r0 + ... + rk))`` (UCTB ``SplitData``);
            ``'tail_floor'`` gives each later part ``int(n * rk)`` and the first part the rest (EAST-Net).
    """
    n = len(anchors)
    if rounding == "cumulative":
        bounds = part_bounds(n, ratios)
    elif rounding == "tail_floor":
        r = check_ratios(ratios)
        sizes = [int(v / sum(r) * n) for v in r[1:]]
        cuts = np.cumsum([0, n - sum(sizes), *sizes])
        bounds = [(int(s), int(e)) for s, e in itertools.pairwise(cuts)]
    else:
        raise ConfigError(f"rounding={rounding!r}; use 'cumulative' or 'tail_floor'")
    return [np.asarray(anchors[s:e]) for s, e in bounds]
