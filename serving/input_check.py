"""Refuse inputs that break the facts a model's exporter recorded about its channels (``input_ranges``, ``one_hot``).

The model answers any finite numbers, so a client's unit mistake, a sentinel for a missing reading or a time of day
in the wrong zone would otherwise come back as an OK forecast. Serving does not import training or the hub: the
facts are read from the ONNX metadata (JSON strings), and a model exported without them is checked as before.
"""

import json
from dataclasses import dataclass

import numpy as np

from cityagent.serving.errors import InvalidInput

MISSING = "a missing reading has no sentinel value: fill it (e.g. the sensor's last value) or skip the window"


@dataclass(frozen=True)
class ChannelFacts:
    """Valid ranges and one-hot groups of the channels (last axis) of the input ``name``."""

    name: str
    channels: tuple[str, ...]
    ranges: dict[int, tuple[float, float]]  # channel index → inclusive [low, high]
    one_hot: tuple[tuple[int, ...], ...]
    calendar: dict[str, str]
    timezone: str | None

    @classmethod
    def from_metadata(cls, metadata: dict[str, str], input_name: str) -> "ChannelFacts | None":
        """The facts of ``input_name``; None for a model exported without them (or with other channels)."""
        try:
            names = json.loads(metadata.get("feature_names", "null"))
            ranges = json.loads(metadata.get("input_ranges", "null"))
            groups = json.loads(metadata.get("one_hot", "null")) or []
        except json.JSONDecodeError:
            return None
        if not isinstance(names, list) or not isinstance(ranges, dict):
            return None
        index = {n: i for i, n in enumerate(names)}
        return cls(
            name=input_name,
            channels=tuple(names),
            ranges={index[n]: (float(lo), float(hi)) for n, (lo, hi) in ranges.items() if n in index},
            one_hot=tuple(tuple(index[n] for n in g) for g in groups if all(n in index for n in g)),
            calendar=json.loads(metadata.get("calendar", "null") or "null") or {},
            timezone=json.loads(metadata.get("timezone", "null") or "null"),
        )

    def check(self, array: np.ndarray) -> None:
        """Raise InvalidInput naming the first channel out of its range, or the first broken one-hot group."""
        if array.ndim < 2 or array.shape[-1] != len(self.channels):
            return  # not this model's channel layout: the signature check speaks for the shape
        flat = array.reshape(-1, array.shape[-1])
        if not self.ranges and not self.one_hot:
            return
        low, high = flat.min(axis=0), flat.max(axis=0)
        for i, (lo, hi) in self.ranges.items():
            if low[i] < lo or high[i] > hi:
                bad = low[i] if low[i] < lo else high[i]
                where = _where(array, i, bad)
                channel = self.channels[i]
                raise InvalidInput(
                    f"input '{self.name}' channel '{channel}' (index {i} of its last axis) holds {bad:g} at {where}, "
                    f"outside its valid range {lo:g} to {hi:g}; {self._advice(channel)}."
                )
        for group in self.one_hot:
            sums = flat[:, list(group)].sum(axis=1)
            binary = np.isin(flat[:, list(group)], (0.0, 1.0)).all(axis=1)
            wrong = np.flatnonzero((sums != 1) | ~binary)
            if wrong.size:
                first, last = self.channels[group[0]], self.channels[group[-1]]
                where = [int(i) for i in np.unravel_index(int(wrong[0]), array.shape[:-1])]
                raise InvalidInput(
                    f"input '{self.name}' channels {first} … {last} must be one-hot (one 1, the rest 0, per step and "
                    f"node: {self.calendar.get(first, 'a one-hot group')}{self._zone()}); at {where} they sum to "
                    f"{sums[wrong[0]]:g}."
                )

    def _advice(self, channel: str) -> str:
        if channel in self.calendar:
            return f"{channel} is {self.calendar[channel]}{self._zone()}"
        return f"send real units, as the model's metadata 'units' says; {MISSING}"

    def _zone(self) -> str:
        return f", in {self.timezone} wall time" if self.timezone else ""


def _where(array: np.ndarray, channel: int, value: float) -> list[int]:
    """The index of the first element of ``channel`` equal to ``value``, over the leading axes."""
    hits = np.flatnonzero(array[..., channel].reshape(-1) == value)
    return [int(i) for i in np.unravel_index(int(hits[0]), array.shape[:-1])] if hits.size else []
