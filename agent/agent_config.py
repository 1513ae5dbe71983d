"""AgentConfig: the agent's knobs (sensing over MQTT, drift watch, retraining, serving address, alerts).

Parsed from configs/agent.yaml at the entry point; unknown keys are an error so YAML never drifts from code.
"""

import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import pandas as pd
from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from cityagent import durations
from cityagent.config_errors import explain, nearest
from cityagent.config_yaml import read_yaml
from cityagent.errors import ConfigError

DEFAULT_AGENT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "agent.yaml"
TASKS = ("traffic", "demand", "risk")


def _duration(text: str) -> str:
    """Reject what is no positive duration, at load time rather than at 3 am. The text is kept as written ('35d'):
    every use reads it through ``cityagent.durations``, which also takes the spellings pandas 4 drops."""
    try:
        ok = durations.duration(text) > pd.Timedelta(0)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"{text!r} is not a positive duration; use e.g. '12h' or '1d'")
    return text


def _tasks(names: Any, what: str) -> None:
    """Keys of ``retrain.schedule`` / ``retrain.overrides`` must be tasks: a typo would never run, silently."""
    for name in names:
        if name not in TASKS:
            near = nearest(name, TASKS)
            hint = f" (did you mean {near!r}?)" if near else ""
            raise ValueError(f"{what} names task {name!r}{hint}, but the tasks are {', '.join(TASKS)}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MqttConfig(_Strict):
    """Where live readings come from and how they are batched into the hub."""

    url: str = Field("mqtt://127.0.0.1:1883", description="mqtt://[user:pass@]host[:port] or mqtts:// for TLS")
    topics: list[str] = Field(default_factory=lambda: ["city/+/readings"], description="a level names the table")
    qos: int = Field(1, ge=0, le=2)
    client_id: str | None = Field(None, description="set it for a durable session: the broker keeps readings")
    batch: int = Field(500, ge=1, description="readings per micro-batch")
    flush_seconds: float = Field(5.0, gt=0, description="longest a reading waits before its batch is written")
    keepalive: int = Field(60, ge=5, description="seconds")
    clock_ahead: str | None = Field(
        None,
        description="how far past the wall clock a reading's ts may lie before it is rejected as from the future "
        "(a sensor clock or UTC offset gone wrong), a duration such as '10min'; default one hub step",
    )

    _clock_ahead = field_validator("clock_ahead")(lambda v: v if v is None else _duration(v))

    @field_validator("client_id")
    @classmethod
    def _durable_qos(cls, v: str | None, info: ValidationInfo) -> str | None:
        """Refused at load: QoS 2 would quietly lose the readings a crash caught in memory (see the message)."""
        from cityagent.agent.mqtt import DURABLE_QOS_PROBLEM  # paho only where MQTT is used

        if v is not None and info.data.get("qos") == 2:
            raise ValueError(DURABLE_QOS_PROBLEM)
        return v

    @field_validator("topics")
    @classmethod
    def _topic_filters(cls, v: list[str]) -> list[str]:
        """Refused at load, not as a paho traceback and a broker timeout once connecting."""
        from cityagent.agent.mqtt import topic_filters_problem  # paho only where MQTT is used

        problem = topic_filters_problem(v)
        if problem:
            raise ValueError(problem)
        return v


class DriftConfig(_Strict):
    """When recent inputs or live error count as drift (see cityagent.agent.drift)."""

    bins: int = Field(10, ge=2, description="quantile bins of the training reference, for PSI")
    psi: float = Field(0.25, gt=0, description="population stability index above which inputs drifted")
    ks: float = Field(0.2, gt=0, le=1, description="Kolmogorov-Smirnov statistic above which inputs drifted")
    mean_shift: float = Field(1.0, gt=0, description="|recent mean - reference mean| in reference std units")
    node_fraction: float = Field(0.25, gt=0, le=1, description="share of nodes whose own mean shifted")
    error_ratio: float = Field(1.5, gt=1, description="recent MAE / training test MAE above which error drifted")
    min_samples: int = Field(200, ge=1, description="fewer recent readings than this give no verdict")
    window: str = Field("1d", description="how far back 'recent' reaches, a duration such as '6h' or '1d'")

    _window = field_validator("window")(lambda v: _duration(v))


class RetrainConfig(_Strict):
    """Scheduled and drift-triggered retraining, and the lock that keeps it to one runner per task."""

    schedule: dict[str, str] = Field(
        default_factory=dict, description="task -> cron expression (5 fields, or 6 with seconds last)"
    )
    timezone: str = Field("Asia/Shanghai", description="IANA zone the cron expressions are read in")
    min_period: str = Field("1d", description="drift triggers at most one retrain per task this often")
    lock_url: str | None = Field(
        None, description="PostgreSQL URL for advisory locks; default $MLFLOW_TRACKING_URI when it is PostgreSQL"
    )
    overrides: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="task -> dotted training-config overrides applied on top of configs/<task>.yaml",
    )
    gate: Path | None = Field(None, description="promotion gate YAML; default configs/gate.yaml")
    keep_versions: int | None = Field(
        None,
        ge=1,
        description="after each retrain, prune the model's versions to this many newest (plus aliased ones and each "
        "alias's newest this many: rollback targets), runs and files included; null keeps every version",
    )

    _min_period = field_validator("min_period")(lambda v: _duration(v))

    @field_validator("schedule")
    @classmethod
    def _cron(cls, v: dict[str, str]) -> dict[str, str]:
        _tasks(v, "the schedule")
        for task, expr in v.items():
            if not croniter.is_valid(expr):
                raise ValueError(f"task {task!r}: {expr!r} is not a cron expression such as '0 3 * * *'")
        return v

    @field_validator("overrides")
    @classmethod
    def _override_tasks(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        _tasks(v, "an override")  # the keys themselves are resolved with the whole config, in load_agent_config
        return v

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        """The scheduler reads its cron times in this zone: a typo is refused at load, not when it starts."""
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            near = nearest(v, available_timezones())
            hint = f" (did you mean {near!r}?)" if near else ""
            raise ValueError(f"{v!r} is not an IANA zone{hint}; use e.g. 'Asia/Shanghai' or 'UTC'") from None
        return v

    @property
    def min_period_delta(self) -> timedelta:
        return durations.duration(self.min_period, "retrain.min_period").to_pytimedelta()


class ServingTarget(_Strict):
    """The prediction service the agent asks (over gRPC, like any other client)."""

    address: str = Field("127.0.0.1:8001", description="host:port of `cityagent serve`")
    tls_ca: Path | None = Field(None, description="CA (PEM) to verify the server; None = plaintext")
    token_env: str = Field("CITYAGENT_SERVING_TOKEN", description="environment variable holding the bearer token")
    timeout_s: float = Field(5.0, gt=0)

    @field_validator("address")
    @classmethod
    def _host_port(cls, v: str) -> str:
        """Refused at load, not as every cycle's 'serving unavailable' after the retries ran out."""
        host, sep, port = v.rpartition(":")
        bracketed = host.startswith("[") == host.endswith("]")  # an IPv6 host is written [::1]:8001
        if not sep or not host.strip("[]") or not bracketed or any(c.isspace() for c in v) or not port.isdigit():
            raise ValueError(f"{v!r} is not host:port; use e.g. '127.0.0.1:8001' or 'cityagent-serving:8001'")
        if not 1 <= int(port) <= 65535:
            raise ValueError(f"port {port} of {v!r} is not in 1..65535")
        return v


class AlertConfig(_Strict):
    """Thresholds the agent's decisions use."""

    congestion_kmh: float = Field(
        20.0, gt=0, description="predicted speed below this is a congestion alert where free-flow is unknown, km/h"
    )
    congestion_share: float = Field(
        0.5, gt=0, le=1, description="predicted speed below this share of the segment's free-flow speed alerts"
    )
    demand_surge: float = Field(1.5, gt=1, description="predicted / usual demand above this asks for rebalancing")
    usual_days: int = Field(7, ge=1, description="days of history that give a zone's usual demand per time of day")
    risk_hotspot: float = Field(1.0, gt=0, description="predicted risk (summed severity per cell and step)")
    risk_top_k: int = Field(5, ge=1, description="how many of the riskiest cells to report each cycle")
    risk_window: str = Field("1h", description="the look-ahead the top-K risk cells are ranked over")
    intervals: Literal["median", "confident", "possible"] = Field(
        "median",
        description="with a quantile model: decide on the median, only when the whole interval agrees (confident), "
        "or when any of it does (possible)",
    )

    _risk_window = field_validator("risk_window")(lambda v: _duration(v))


class LoopConfig(_Strict):
    """The agent loop: which served models it asks, how often, and how it rides out a serving outage."""

    interval: str = Field("5min", description="time between cycles, a duration such as '5min' or '1h'")
    models: dict[str, str] = Field(
        default_factory=lambda: {
            "traffic": "traffic-synthetic",
            "demand": "demand-synthetic",
            "risk": "risk-synthetic",
        },
        description="domain -> served model name, asked in this order",
    )
    retries: int = Field(6, ge=0, description="retries of a failed call to the serving endpoint")
    backoff_s: float = Field(0.5, gt=0, description="first wait before a retry; doubles each time, seconds")
    backoff_max_s: float = Field(30.0, gt=0, description="longest wait between retries, seconds")
    retrain_on_drift: bool = Field(True, description="drift starts `cityagent retrain --now TASK` in the background")
    score_grace: str = Field(
        "1h",
        description="hub time after a forecast's last target that late readings may still arrive; past it the "
        "forecast is scored on the readings there, the missing ones counted as lost (and every risk forecast waits "
        "it out: incidents have no per-cell report)",
    )

    history: str | None = Field(
        "35d",
        description="the furthest back from each table's newest date a cycle reads the hub (plus a day); within it a "
        "cycle reads what the served models' input windows, drift.window, alerts.usual_days and waiting forecasts "
        "need; null reads the whole hub every cycle",
    )

    _interval = field_validator("interval", "score_grace")(lambda v: _duration(v))
    _history = field_validator("history")(lambda v: v if v is None else _duration(v))

    @field_validator("models")
    @classmethod
    def _domains(cls, v: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(v) - {"traffic", "demand", "risk"})
        if unknown:
            raise ValueError(f"unknown domain(s) {unknown}; the agent acts on traffic, demand and risk")
        return v


class AgentConfig(_Strict):
    """The whole agent."""

    hub: str | None = Field(None, description="the hub the agent reads and retrains on; default $CITYAGENT_HOME/hub")
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    drift: DriftConfig = Field(default_factory=DriftConfig)
    retrain: RetrainConfig = Field(default_factory=RetrainConfig)
    serving: ServingTarget = Field(default_factory=ServingTarget)
    alerts: AlertConfig = Field(default_factory=AlertConfig)
    loop: LoopConfig = Field(default_factory=LoopConfig)


def load_agent_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> AgentConfig:
    """Read an agent YAML (default configs/agent.yaml when it exists) and apply nested overrides.

    Args:
        path: YAML file whose top level is AgentConfig's sections; None uses the default file or built-in values.
        overrides: nested dict applied on top, e.g. ``{"mqtt": {"batch": 50}}``.
    """
    if path is None and DEFAULT_AGENT_CONFIG.is_file():
        path = DEFAULT_AGENT_CONFIG
    raw: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"agent config {p} does not exist; pass an existing YAML file or leave it out")
        raw = read_yaml(p, "agent config") or {}
        if not isinstance(raw, dict):
            raise ConfigError(f"agent config {p} must be a mapping of sections, not {type(raw).__name__}")
    for section, values in (overrides or {}).items():
        raw[section] = {**(raw.get(section) or {}), **values} if isinstance(values, dict) else values
    try:
        cfg = AgentConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(f"agent config {path or '(defaults)'}: {explain(e, AgentConfig)}") from e
    try:
        check_history(cfg)
        check_retrains(cfg)
    except ConfigError as e:
        raise ConfigError(f"agent config {path or '(defaults)'}: {e}") from e
    return cfg


def check_history(cfg: AgentConfig) -> None:
    """A cycle reads ``loop.history`` of the hub: drift's window and the usual-demand days must lie inside it."""
    if cfg.loop.history is None:
        return
    for key, value in (("drift.window", cfg.drift.window), ("alerts.usual_days", f"{cfg.alerts.usual_days}d")):
        if durations.duration(value) > durations.duration(cfg.loop.history):
            raise ConfigError(
                f"loop.history ({cfg.loop.history}) is shorter than {key} ({value}), which every cycle reads back; "
                f"raise loop.history to at least {value}, or set it to null to read the whole hub"
            )


def check_retrains(cfg: AgentConfig) -> None:
    """Build the training config of every task ``cfg`` retrains (scheduled, or with ``retrain.overrides``) as
    ``cityagent retrain`` will, so a mistyped override key fails when the agent loads its config, not when drift
    first triggers a retrain; nothing is trained and neither Ray nor MLflow starts."""
    from cityagent.agent.retrain import retrain_config  # it imports this module

    for task in [*cfg.retrain.schedule, *sorted(set(cfg.retrain.overrides) - set(cfg.retrain.schedule))]:
        overrides = cfg.retrain.overrides.get(task, {})
        try:
            run = retrain_config(task, cfg)
        except ConfigError as e:
            raise ConfigError(_override_error(task, overrides, str(e))) from e
        if any(k == "model" or k.startswith("model.") for k in overrides):
            _check_model_override(task, run.model.name, run.model.params)


def _check_model_override(task: str, model: str, params: Mapping[str, Any]) -> None:
    """Parameter names the retrain's model does not take; only for overrides that touch ``model``, since the
    registry imports torch (seconds) and the task's own config was checked when it was written."""
    from cityagent.models import check_param_names

    try:
        check_param_names(model, params)
    except ConfigError as e:
        raise ConfigError(f"retrain.overrides.{task}: {e}") from e


def _override_error(task: str, overrides: dict[str, Any], message: str) -> str:
    """``config key 'train.max_epoch' does not exist; …`` (the run config's words) located in the agent config:
    ``retrain.overrides.traffic.train.max_epoch does not exist; …``."""
    found = re.match(r"config key '([^']+)'(:?) ?(.*)", message, re.S)
    if not found:  # not about one key (e.g. loop.models, which names itself)
        return message
    key, colon, rest = found.groups()
    ours = any(key == o or key.startswith(f"{o}.") or o.startswith(f"{key}.") for o in overrides)
    where = f"retrain.overrides.{task}.{key}" if ours else f"retrain.overrides.{task} (config key {key!r})"
    return f"{where}{colon} {rest}"
