"""Time-of-day and day-of-week embeddings read from the input's calendar channels (STID, Shao et al. 2022).

Expected layout (the hub's windows): value channels first (the scaled target at ``target_channel``),
then the calendar channels, UNSCALED: one time-of-day channel in [0, 1) (fraction of the day) followed
by seven day-of-week one-hot channels (Monday first). By default the last eight channels are taken as
``[tod, dow_0, ..., dow_6]``; ``tod_channel`` and ``dow_channels`` override that.
"""

from collections.abc import Sequence

import torch
from torch import nn

from cityagent.errors import ConfigError


def resolve_calendar(
    in_features: int, tod_channel: int | None, dow_channels: Sequence[int] | None
) -> tuple[int, tuple[int, ...]]:
    """Absolute (tod, dow) channel indices; ConfigError when they do not fit ``in_features``."""
    if tod_channel is None and dow_channels is None and in_features < 9:
        raise ConfigError(
            f"in_features={in_features} has no room for the default calendar channels (1 value + tod + 7 dow);"
            " add time-of-day and day-of-week features to the task or set tod_channel and dow_channels."
        )
    tod = in_features - 8 if tod_channel is None else tod_channel
    dow = tuple(range(in_features - 7, in_features)) if dow_channels is None else tuple(dow_channels)
    chans = [tod, *dow]
    if len(dow) != 7 or any(not -in_features <= c < in_features for c in chans):
        raise ConfigError(f"calendar channels tod={tod!r}, dow={dow!r} must be 1 + 7 indices below {in_features}.")
    chans = [c % in_features for c in chans]
    if len(set(chans)) != 8:
        raise ConfigError(f"calendar channels overlap: tod={tod!r}, dow={dow!r}.")
    return chans[0], tuple(chans[1:])


def resolve_hour_channels(in_features: int, hour_channels: Sequence[int], dow: tuple[int, ...]) -> tuple[int, ...]:
    """Absolute indices of 24 one-hot hour-of-day channels (GSNet's layout) that overlap neither each other nor
    the day-of-week ones; ConfigError naming ``hour_channels`` otherwise."""
    hours = tuple(int(c) % in_features for c in hour_channels if -in_features <= int(c) < in_features)
    if len(hours) != len(hour_channels) or len(hours) != 24 or len(set(hours)) != 24 or set(hours) & set(dow):
        raise ConfigError(
            f"hour_channels={list(hour_channels)!r} must be 24 distinct one-hot hour channels below {in_features}, "
            f"apart from the day-of-week channels {list(dow)!r}."
        )
    return hours


class CalendarEmbedding(nn.Module):
    """Embeds one step's time-of-day slot and day of week: x [B, N, F] → [B, N, tod_dim + dow_dim].

    Args:
        tod_channel: channel holding the fraction of the day in [0, 1), or None with ``hour_channels``.
        dow_channels: the seven day-of-week one-hot channels.
        steps_per_day: time-of-day slots (288 for 5-min data, 96 for 15-min, 24 hourly).
        tod_dim: size of the time-of-day embedding.
        dow_dim: size of the day-of-week embedding.
        hour_channels: 24 one-hot hour-of-day channels to read the slot from instead of ``tod_channel``
            (GSNet's risk layout has no time-of-day fraction); ``steps_per_day`` must then be 24.
    """

    def __init__(
        self,
        tod_channel: int | None,
        dow_channels: tuple[int, ...],
        steps_per_day: int,
        tod_dim: int,
        dow_dim: int,
        hour_channels: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__()
        if (tod_channel is None) == (hour_channels is None):
            raise ConfigError("the calendar embedding reads the time of day from tod_channel or hour_channels: one.")
        if hour_channels is not None and steps_per_day != len(hour_channels):
            raise ConfigError(f"hour_channels are 24 hourly slots, so steps_per_day must be 24, got {steps_per_day}.")
        self.tod_channel = tod_channel
        self.steps_per_day = steps_per_day
        self.register_buffer("dow_idx", torch.tensor(dow_channels, dtype=torch.long))
        self.hourly = hour_channels is not None
        if self.hourly:
            self.register_buffer("hour_idx", torch.tensor(hour_channels, dtype=torch.long))
        self.tod = nn.Parameter(torch.empty(steps_per_day, tod_dim))
        self.dow = nn.Parameter(torch.empty(7, dow_dim))
        nn.init.xavier_uniform_(self.tod)
        nn.init.xavier_uniform_(self.dow)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, N, F] (one time step) → [B, N, tod_dim + dow_dim]."""
        dow = x.index_select(-1, self.dow_idx)  # one-hot [B, N, 7]; a soft mix also works
        if getattr(self, "hourly", False):  # one-hot hours: a product, as for the weekday (exports the same)
            return torch.cat([x.index_select(-1, self.hour_idx) @ self.tod, dow @ self.dow], dim=-1)
        slot = torch.floor(x[..., self.tod_channel] * self.steps_per_day + 0.5)  # nearest slot, [B, N]
        slot = slot.clamp(0, self.steps_per_day - 1).long()
        return torch.cat([self.tod[slot], dow @ self.dow], dim=-1)
