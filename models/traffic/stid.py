"""STID: Shao et al., "Spatial-Temporal Identity: A Simple yet Effective Baseline for Multivariate Time
Series Forecasting", CIKM 2022. Node, time-of-day and day-of-week identities + a residual MLP."""

from collections.abc import Sequence

import torch
from torch import nn

from cityagent.errors import ConfigError
from cityagent.models.checks import check_dropout, check_size, check_sizes
from cityagent.models.layers.calendar import CalendarEmbedding, resolve_calendar, resolve_hour_channels
from cityagent.models.layers.quantile_head import QuantileOutput
from cityagent.models.registry import register


class ResidualMLP(nn.Module):
    """x + FC(Dropout(ReLU(FC(x)))), the paper's encoder layer."""

    def __init__(self, dim: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


@register("stid", domain="any")
class STID(nn.Module):
    """STID. Calendar layout: see ``cityagent.models.layers.calendar`` (by default the last 8 channels
    are an unscaled time-of-day fraction in [0, 1) and 7 day-of-week one-hots; the rest are values).

    Args:
        num_nodes: N (one learned identity per node).
        in_features: F.
        input_len: T_in; the value channels of all T_in steps are embedded together.
        horizon: H, steps ahead.
        quantiles: levels for a quantile forecast, or None.
        tod_channel: time-of-day channel (default ``in_features - 8``).
        dow_channels: seven day-of-week one-hot channels (default the last seven).
        steps_per_day: time-of-day slots (288 for 5-min data, 96 for 15-min; 24 with ``hour_channels``).
        hour_channels: 24 one-hot hour-of-day channels read instead of a time-of-day fraction (GSNet's risk
            windows: channels 1–24, with ``dow_channels`` 25–31); they are calendar, not values.
        embed_dim, node_dim, tod_dim, dow_dim: embedding sizes (32 each in the paper).
        num_layers: residual MLP layers (3 in the paper).
        dropout: dropout inside each layer (0.15 in the paper).
    """

    def __init__(
        self,
        num_nodes: int,
        in_features: int,
        input_len: int,
        horizon: int,
        quantiles: tuple[float, ...] | None = None,
        tod_channel: int | None = None,
        dow_channels: Sequence[int] | None = None,
        steps_per_day: int = 288,
        hour_channels: Sequence[int] | None = None,
        embed_dim: int = 32,
        node_dim: int = 32,
        tod_dim: int = 32,
        dow_dim: int = 32,
        num_layers: int = 3,
        dropout: float = 0.15,
    ) -> None:
        super().__init__()
        # num_layers 0 would drop the MLP, leaving a linear model on the embeddings: not STID
        check_sizes(
            "stid", embed_dim=embed_dim, node_dim=node_dim, tod_dim=tod_dim, dow_dim=dow_dim, num_layers=num_layers
        )
        steps_per_day, dropout = check_size("stid", "steps_per_day", steps_per_day), check_dropout("stid", dropout)
        if hour_channels is not None and tod_channel is not None:
            raise ConfigError("stid reads the time of day from tod_channel or hour_channels, not both: drop one.")
        if hour_channels is None:
            tod, dow = resolve_calendar(in_features, tod_channel, dow_channels)
            hours, calendar = None, {tod, *dow}
        else:  # the placeholder tod channel only lets resolve_calendar check the weekdays
            if dow_channels is None:
                raise ConfigError("stid with hour_channels needs dow_channels (the seven weekday one-hots) too.")
            hours = resolve_hour_channels(in_features, hour_channels, ())
            _, dow = resolve_calendar(in_features, hours[0], dow_channels)
            tod, hours = None, resolve_hour_channels(in_features, hour_channels, dow)
            calendar = {*hours, *dow}
        values = [c for c in range(in_features) if c not in calendar]
        self.register_buffer("value_idx", torch.tensor(values, dtype=torch.long))
        self.series = nn.Linear(input_len * len(values), embed_dim)  # the paper's 1×1 conv over T_in·C
        self.node = nn.Parameter(torch.empty(num_nodes, node_dim))
        nn.init.xavier_uniform_(self.node)
        self.calendar = CalendarEmbedding(tod, dow, steps_per_day, tod_dim, dow_dim, hours)
        hidden = embed_dim + node_dim + tod_dim + dow_dim
        self.encoder = nn.Sequential(*[ResidualMLP(hidden, dropout) for _ in range(num_layers)])
        self.head = QuantileOutput(horizon, quantiles)
        self.regression = nn.Linear(hidden, self.head.out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, T, N, F] → [B, H, N] or [B, H, N, Q]."""
        b, _, n, _ = x.shape
        v = x.index_select(-1, self.value_idx).permute(0, 2, 1, 3).reshape(b, n, -1)  # [B, N, T*C]
        h = torch.cat(
            [self.series(v), self.node.unsqueeze(0).expand(b, -1, -1), self.calendar(x[:, -1])], dim=-1
        )  # [B, N, hidden]
        return self.head(self.regression(self.encoder(h)))
