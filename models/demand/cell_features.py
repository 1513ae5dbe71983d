"""Per-cell design matrix for tree models on closeness/period/trend windows (UCTB-style demand tasks).

Trees split on one feature at a time, so the summaries a demand forecaster needs are spelled out: the
historical mean (HM), each frame group's mean, today's level against the same slot yesterday and
last week, the same frames in the neighbouring cells, the calendar channels and the cell's identity.

With a time-of-day channel, a per-cell profile (mean by hour and weekend, fitted on the training windows) adds
how far the recent hours run above or below their usual level, carried to the target hour additively and
multiplicatively. Trees cannot extrapolate, so a city-wide shock (weather, an event) that the training weeks
never showed is otherwise forecast at the usual level; the profile-scaled forecast moves with it, as a feature
and as half of the baseline the trees correct (``CellFeatures.baseline``).
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cityagent.errors import ConfigError
from cityagent.models.params import check_frames

# Features are snapped to multiples of 2^-20 (~1e-6 in the scaled units): the trees compare them with thresholds
# taken from the training features themselves, and the exported model (torch, then ONNX Runtime) sums and averages
# in other orders than numpy, a few ulps apart. Snapped, both land on the same grid point and take the same branch.
SNAP = 2.0**20


def snap(a: np.ndarray) -> np.ndarray:
    """``a`` rounded to the feature grid (half to even, as torch and ONNX Runtime round)."""
    return np.round(a * SNAP) / SNAP


def neighbour_weights(adjacency: np.ndarray) -> np.ndarray:
    """Row-normalised adjacency without self-loops: ``W @ v`` is the mean over each node's neighbours."""
    w = np.asarray(adjacency, dtype=np.float64).copy()
    np.fill_diagonal(w, 0.0)
    deg = w.sum(1, keepdims=True)
    return np.divide(w, deg, out=np.zeros_like(w), where=deg > 0)  # isolated nodes get 0


class SlotProfile:
    """Per-node mean of the target by slot of day (and weekend), fitted on input frames.

    Args:
        steps_per_day: slots per day (24 hourly).
        tod_channel: channel with the time of day in [0, 1).
        weekend_channel: channel with a 0/1 weekend flag, or None for one profile for all days.
        day_channel: channel with the day of week 0..6 (``dow_index``) for one profile per weekday and slot,
            instead of ``weekend_channel``; a slot ``shift`` steps ahead that crosses midnight then lands on the
            next day (a weekend flag cannot say whether Friday 23:00 + 1 h is a weekend hour, so it keeps the day).
        rank: keep only the ``rank`` leading components of the ``[slots, N]`` table (on the square-root scale,
            where count noise is about even): the cells share a few daily shapes, so a slot seen on few days
            (weekend hours) borrows the shape the others show instead of its own noise. None keeps the raw means.
    """

    def __init__(
        self,
        steps_per_day: int,
        tod_channel: int,
        weekend_channel: int | None = None,
        rank: int | None = None,
        day_channel: int | None = None,
    ) -> None:
        if weekend_channel is not None and day_channel is not None:
            raise ConfigError(
                "the hourly profile takes weekend_channel or day_channel, not both (a profile per weekday already "
                "splits weekends): set one of them to null."
            )
        self.steps_per_day, self.tod_channel, self.weekend_channel = steps_per_day, tod_channel, weekend_channel
        self.rank, self.day_channel = rank, day_channel
        self.table: np.ndarray | None = None  # [slots, N]

    @property
    def n_slots(self) -> int:
        """Rows of the table: slots per day, times 7 days or 2 (weekday, weekend) when it has those channels."""
        if getattr(self, "day_channel", None) is not None:
            return 7 * self.steps_per_day
        return self.steps_per_day * (2 if self.weekend_channel is not None else 1)

    def slots(self, x: np.ndarray, shift: int = 0) -> np.ndarray:
        """Slot index of every step of ``x [S, T, N, F]`` (``shift`` steps later): ``[S, T]``."""
        step = np.floor(x[:, :, 0, self.tod_channel] * self.steps_per_day + 0.5).astype(np.int64) + shift
        if getattr(self, "day_channel", None) is not None:  # slots count through the week, so midnight rolls over
            day = np.round(x[:, :, 0, self.day_channel]).astype(np.int64)
            return (day * self.steps_per_day + step) % self.n_slots
        out = step % self.steps_per_day
        if self.weekend_channel is not None:
            out = out + self.steps_per_day * (x[:, :, 0, self.weekend_channel] > 0.5)
        return out

    def fit(self, x: np.ndarray, frames: tuple[int, ...], target_channel: int) -> "SlotProfile":
        """Average the target over the given frames of the training windows, per slot and node."""
        if getattr(self, "day_channel", None) is not None:
            day = x[:, list(frames), 0, self.day_channel]
            if not np.isin(day, np.arange(7)).all():
                raise ConfigError(
                    f"day_channel {self.day_channel} holds {day[~np.isin(day, np.arange(7))].flat[0]!r}, not a day "
                    "of week 0..6: point it at the calendar's dow_index channel (task.params.calendar)."
                )
        slots = self.slots(x)[:, list(frames)].reshape(-1)  # [S*T_g]
        values = x[..., target_channel][:, list(frames)].reshape(len(slots), -1)  # [S*T_g, N]
        n_slots = self.n_slots
        counts = np.bincount(slots, minlength=n_slots)[:, None]
        sums = np.zeros((n_slots, values.shape[1]))
        np.add.at(sums, slots, values)
        overall = values.mean(0, keepdims=True)  # a slot never seen falls back to the node's mean
        self.table = np.where(counts > 0, sums / np.maximum(counts, 1), overall)
        if getattr(self, "rank", None):
            if self.rank >= min(self.table.shape):
                rows, nodes = self.table.shape
                raise ConfigError(
                    f"profile rank {self.rank} keeps every component of the {rows}-slot × {nodes}-node profile; "
                    f"set it below {min(rows, nodes)}, or null for the raw means."
                )
            root = np.sqrt(np.maximum(self.table, 0.0))
            u, s, vt = np.linalg.svd(root, full_matrices=False)
            self.table = np.maximum((u[:, : self.rank] * s[: self.rank]) @ vt[: self.rank], 0.0) ** 2
        return self

    def empty(self) -> "SlotProfile":
        """An unfitted profile with the same settings."""
        return SlotProfile(
            self.steps_per_day,
            self.tod_channel,
            self.weekend_channel,
            getattr(self, "rank", None),
            getattr(self, "day_channel", None),
        )

    def __call__(self, slots: np.ndarray) -> np.ndarray:
        """Profile values at ``slots [...]`` → ``[..., N]``."""
        if self.table is None:
            raise ConfigError("the slot profile is not fitted; fit the model before predicting.")
        return self.table[slots]


@dataclass(frozen=True)
class CellFeatures:
    """Builds ``[S*N, K]`` features (row ``s*N + n``) from windows ``x [S, T, N, F]`` in the scaled space.

    Args:
        input_len, num_nodes, in_features: the window's shape (T, N, F).
        target_channel: the forecast channel; the other channels of the last step (calendar) are features.
        closeness, period, trend: resolved frame indices of each group (may be empty).
        base: frames whose mean is the historical-mean baseline (a feature, and what the trees correct).
        neighbours: ``[N, N]`` from ``neighbour_weights``, or None for no neighbour features.
        profile: a ``SlotProfile`` (fitted by ``fit``) for the level-vs-usual features, or None.
        recent: how many of the last closeness frames measure the current level for the baseline.
        profile_weight: weight of the profile forecast in the baseline (the rest is HM).
        city: add the whole city's level against its usual (closeness and recent frames) as features, and scale
            the baseline's profile forecast by the city's recent level instead of the cell's (or its neighbours').
        profile_all: fit the profile on every frame of the windows (period and trend frames reach weeks further
            back) instead of the closeness frames only.
    """

    input_len: int
    num_nodes: int
    in_features: int
    target_channel: int
    closeness: tuple[int, ...]
    period: tuple[int, ...]
    trend: tuple[int, ...]
    base: tuple[int, ...]
    neighbours: np.ndarray | None = None
    profile: SlotProfile | None = None
    recent: int = 3
    profile_weight: float = 0.5
    city: bool = False
    profile_all: bool = False

    @classmethod
    def build(
        cls,
        input_len: int,
        num_nodes: int,
        in_features: int,
        target_channel: int = 0,
        closeness_frames: Sequence[int] | None = None,
        period_frames: Sequence[int] | None = None,
        trend_frames: Sequence[int] | None = None,
        base_frames: Sequence[int] | None = None,
        adjacency: np.ndarray | None = None,
        profile: SlotProfile | None = None,
        recent: int = 3,
        profile_weight: float = 0.5,
        city: bool = False,
        profile_all: bool = False,
    ) -> "CellFeatures":
        """Resolve the frame indices (closeness defaults to every frame, period/trend to none, base to every frame)."""
        return cls(
            input_len,
            num_nodes,
            in_features,
            target_channel,
            check_frames(closeness_frames, input_len, "closeness_frames"),
            check_frames(period_frames or (), input_len, "period_frames"),
            check_frames(trend_frames or (), input_len, "trend_frames"),
            check_frames(base_frames, input_len, "base_frames"),
            None if adjacency is None else neighbour_weights(adjacency),
            profile,
            recent,
            profile_weight,
            city,
            profile_all,
        )

    def fit(self, x: np.ndarray) -> "CellFeatures":
        """Fit the profile (if any) on the ``profile_frames`` of the training windows ``x [S, T, N, F]``."""
        if self.profile is not None:
            self.profile.fit(np.asarray(x, dtype=np.float64), self.profile_frames, self.target_channel)
        return self

    @property
    def profile_frames(self) -> tuple[int, ...]:
        """The frames the profile averages: all of them with ``profile_all``, else the closeness frames."""
        return tuple(range(self.input_len)) if self.profile_all else self.closeness

    @property
    def node_column(self) -> int:
        """Index of the node-identity column (the last one)."""
        return self.width - 1

    @property
    def width(self) -> int:
        groups = [g for g in (self.closeness, self.period, self.trend) if g]
        diffs = sum(bool(g) for g in (self.period, self.trend))
        nb = len(self.base) + 1 if self.neighbours is not None else 0
        prof = 0 if self.profile is None else 6 + 2 * (self.neighbours is not None) + 2 * self.city
        return self.input_len + 1 + len(groups) + diffs + nb + prof + (self.in_features - 1) + 1

    def baseline(self, x: np.ndarray) -> np.ndarray:
        """What the trees correct, ``[S, T, N, F]`` → ``[S, N]``: the HM, mixed with a profile forecast (weight
        ``profile_weight``) when there is a profile: the usual level at the target scaled by the last ``recent``
        frames' level against theirs: the city's with ``city``, else pooled with the neighbours when there is a
        graph. That forecast follows a city-wide shock that the trees cannot extrapolate to; alone it is noisier
        than HM on ordinary days."""
        if self.profile is None or self.profile_weight == 0:
            return self.hm(x)
        levels = self.levels(x, x[..., self.target_channel])
        shock = levels[
            "recent_city" if self.city else "recent_pooled" if self.neighbours is not None else "scaled_recent"
        ]
        return self.profile_weight * shock + (1 - self.profile_weight) * self.hm(x)

    def hm(self, x: np.ndarray) -> np.ndarray:
        """Historical mean of the base frames: ``[S, T, N, F]`` → ``[S, N]``."""
        return x[..., self.target_channel][:, list(self.base)].mean(1)  # two index steps: no axis reordering

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """``x [S, T, N, F]`` → ``[S*N, width]``."""
        x = np.asarray(x, dtype=np.float64)
        want = (self.input_len, self.num_nodes, self.in_features)
        if x.ndim != 4 or x.shape[1:] != want:
            raise ConfigError(f"cell features expect x of shape [S, T, N, F] = [S, *{want}], got {x.shape}.")
        s, n = x.shape[0], self.num_nodes
        v = x[..., self.target_channel]  # [S, T, N]
        last = v[:, -1]  # [S, N]
        cols = [v.transpose(0, 2, 1), self.hm(x)[..., None]]  # lags [S, N, T], HM [S, N, 1]
        cols += [v[:, list(g)].mean(1)[..., None] for g in (self.closeness, self.period, self.trend) if g]
        cols += [(last - v[:, g[-1]])[..., None] for g in (self.period, self.trend) if g]  # level vs same slot
        if self.neighbours is not None:
            nb = np.einsum("nm,stm->snt", self.neighbours, v[:, list(self.base)])  # [S, N, len(base)]
            cols += [nb, nb.mean(-1, keepdims=True)]
        if self.profile is not None:
            cols += [f[..., None] for f in self.levels(x, v).values()]
        cols.append(np.delete(x[:, -1], self.target_channel, axis=-1))  # calendar / exogenous [S, N, F-1]
        cols.append(np.broadcast_to(np.arange(n, dtype=np.float64)[None, :, None], (s, n, 1)))
        return snap(np.concatenate(cols, axis=-1).reshape(s * n, -1))

    def levels(self, x: np.ndarray, v: np.ndarray) -> dict[str, np.ndarray]:
        """Recent level against the profile, carried to the target slot: 6 ``[S, N]`` arrays, 2 more each with
        neighbours and with ``city``."""
        close, recent = list(self.closeness), list(self.closeness[-self.recent :])
        slots = self.profile.slots(x)  # [S, T]
        usual = self.profile(slots[:, close])  # [S, T_c, N]
        ahead = self.profile(self.profile.slots(x[:, -1:], shift=1)[:, 0])  # [S, N] usual level at the target
        gap = v[:, close] - usual  # [S, T_c, N]
        eps = 0.1 * float(self.profile.table.mean()) + 1e-9  # keeps near-empty cells' ratios tame

        def scaled_by(num: np.ndarray, den: np.ndarray) -> np.ndarray:
            return ahead * (num + eps) / (den + eps)

        out = {
            "usual": ahead,
            "last_gap": gap[:, -1],
            "mean_gap": gap.mean(1),
            "shifted": ahead + gap.mean(1),
            "scaled": scaled_by(v[:, close].sum(1), usual.sum(1)),  # the closeness frames' level × usual
            "scaled_recent": scaled_by(v[:, recent].sum(1), self.profile(slots[:, recent]).sum(1)),
        }
        if self.neighbours is not None:  # the ratios pooled over the cell and its neighbours: less noise
            for name, num, den in (
                ("scaled_pooled", v[:, close].sum(1), usual.sum(1)),
                ("recent_pooled", v[:, recent].sum(1), self.profile(slots[:, recent]).sum(1)),
            ):
                out[name] = scaled_by(num + num @ self.neighbours.T, den + den @ self.neighbours.T)
        if self.city:  # the whole city's recent level against its usual: a shock shows here first
            for name, num, den in (
                ("scaled_city", v[:, close].sum(1), usual.sum(1)),
                ("recent_city", v[:, recent].sum(1), self.profile(slots[:, recent]).sum(1)),
            ):
                out[name] = ahead * num.sum(1, keepdims=True) / (den.sum(1, keepdims=True) + 1e-9)
        return out
