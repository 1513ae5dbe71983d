"""The retrain job behind `cityagent retrain`: newest hub data → challenger → gate against the champion → promote.

``retrain(task)`` trains ``configs/<task>.yaml`` (plus ``retrain.overrides[task]`` of the agent config) on the hub
as it is now, on Ray unless the config says ``train.workers: 0``; logs the drift reference into the run; exports
and registers the model as the challenger; scores challenger and champion on the same window (the new task's
test split, the most recent data) and promotes only when the gate's verdict says so and the challenger expects the
same input (node ids, window, step, features) and answers the same output (horizon, target offsets, quantiles, shape)
as the champion. Otherwise the champion stays and the verdict is recorded in the registry history; a retrain that
fails, or that SIGTERM interrupts, leaves the champion untouched too and is recorded as failed. The caller holds the
task's lock (``Scheduler.run_now`` does).
"""

import logging
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cityagent.agent.agent_config import AgentConfig, DriftConfig, load_agent_config
from cityagent.agent.drift import REFERENCE_ARTIFACT, reference_from, save_reference
from cityagent.agent.drift_watch import reference_path
from cityagent.agent.schedule import Interrupted, is_sigterm
from cityagent.agent.sense import split_features
from cityagent.config_errors import nearest
from cityagent.errors import CityAgentError, ConfigError, TrackingUnreachable
from cityagent.health import unreachable
from cityagent.home import home_dir
from cityagent.hub.protocols import TaskData
from cityagent.interrupts import uninterrupted

if TYPE_CHECKING:  # training is imported when a retrain runs
    from cityagent.training.config import RunConfig
    from cityagent.training.gate import GateConfig, Verdict

log = logging.getLogger(__name__)
CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
GATE_WINDOWS = 2048  # the newest test windows both models are scored on: bounds memory on large cities


@dataclass
class RetrainResult:
    """What a retrain came to: the challenger, the champion it was judged against, and the verdict."""

    task: str
    model: str  # registered model name, e.g. traffic-synthetic
    run_id: str
    challenger: str  # registered version
    champion: str | None  # the champion's version before the retrain
    promoted: bool
    reasons: list[str]
    scores: dict[str, dict[str, float]] = field(default_factory=dict)  # challenger / champion → metrics
    pruned: list[str] = field(default_factory=list)  # old versions deleted after it (retrain.keep_versions)


def retrain_config(
    task: str, cfg: AgentConfig | None = None, overrides: Mapping[str, Any] | None = None
) -> "RunConfig":
    """``configs/<task>.yaml`` with the agent's hub and ``retrain.overrides[task]``, then ``overrides`` on top."""
    from cityagent.training.config import load_config

    cfg = cfg or load_agent_config()
    path = CONFIG_DIR / f"{task}.yaml"
    if not path.is_file():
        have = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml") if p.stem in ("traffic", "demand", "risk"))
        near = nearest(task, have)
        hint = f"; did you mean {near!r}?" if near else ""
        raise ConfigError(f"task {task!r} has no training config ({path}); pass one of: {', '.join(have)}{hint}")
    dotted: dict[str, Any] = {"task.hub": cfg.hub} if cfg.hub else {}
    served = cfg.loop.models.get(task)
    if served:  # the retrain registers <task>-<dataset>: the name the loop asks for, so a promotion reaches it
        if not served.startswith(f"{task}-") or len(served) == len(task) + 1:
            raise ConfigError(
                f"loop.models.{task} is {served!r}, but a retrain registers '{task}-<task.dataset>': name the served "
                f"model '{task}-<dataset>' (e.g. '{task}-synthetic') so retrained versions reach the loop"
            )
        dotted["task.dataset"] = served[len(task) + 1 :]
    dotted |= dict(cfg.retrain.overrides.get(task, {})) | dict(overrides or {})
    return load_config(path, dotted | {"tracking.register_model": False})  # retrain exports and registers itself


def log_reference(run_id: str, data: TaskData, metrics: Mapping[str, float], bins: int, tracking_uri: str) -> dict:
    """Summarise the training steps' value channels as the run's drift reference (artifact and local copy)."""
    from cityagent.training.tracking import client_for

    columns, _ = split_features(data.feature_names)
    train_end = int(data.extra.get("train_steps") or data.train.anchors.max() + 1)
    values = {c: data.train.x[:train_end, :, i] for i, c in enumerate(columns)}  # [T_train, N] each
    ref = reference_from(values, metrics={"mae": float(metrics["test_mae"])}, nodes=data.nodes, bins=bins)
    with tempfile.TemporaryDirectory() as tmp:
        client_for(tracking_uri).log_artifact(run_id, str(save_reference(ref, Path(tmp) / REFERENCE_ARTIFACT)))
    save_reference(ref, reference_path(run_id))
    return ref


def gate_window(data: TaskData, limit: int = GATE_WINDOWS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(x, y, mask)`` of the newest ``limit`` windows of the task's test split, evaluated nodes only."""
    x, y, mask = data.test.batch(slice(-limit, None))  # [S, T_in, N, F], [S, H, N], [S, H, N]
    if not len(x):
        raise ConfigError("the task's test split has no windows to judge the challenger on; use a longer hub")
    return x, y, mask & np.asarray(data.eval_mask, dtype=bool)[None, None, :]


def _champion(name: str, uri: str, workdir: Path) -> tuple[str | None, Path | None]:
    """The champion's version and a local copy of its ONNX file, or (None, None) without a champion."""
    from cityagent.serving.sources import RegistrySource
    from cityagent.serving.spec import ModelSpec
    from cityagent.training.registry import get_client

    aliases = get_client(uri).get_registered_model(name).aliases
    if "champion" not in aliases:
        return None, None
    version = str(aliases["champion"])
    return version, RegistrySource(uri).fetch(ModelSpec("registry", name, version), version, workdir)


def judge(
    challenger: Path, name: str, data: TaskData, uri: str, gate_cfg: "GateConfig | None" = None
) -> tuple["Verdict", str | None, dict[str, dict[str, float]]]:
    """The gate's verdict on ``challenger`` vs the current champion, both scored on the task's test split.

    Returns:
        ``(verdict, champion version or None, {"challenger": metrics, "champion": metrics})``.
    """
    from cityagent.training.gate import Verdict, evaluate_onnx, gate, load_gate_config

    gate_cfg = gate_cfg or load_gate_config()
    x, y, mask = gate_window(data)
    new = evaluate_onnx(challenger, x, y, mask, latency_runs=gate_cfg.latency_runs)
    scores = {"challenger": new.metrics}
    with tempfile.TemporaryDirectory(dir=home_dir()) as tmp:
        version, path = _champion(name, uri, Path(tmp))
        if path is None:
            return gate(new, None, gate_cfg), None, scores
        refusals = contract_refusals(challenger, path, version)
        if refusals:  # serving would hot-swap and every client would break (or it refuses and keeps the old one)
            return Verdict(False, refusals), version, scores
        try:
            old = evaluate_onnx(path, x, y, mask, latency_runs=gate_cfg.latency_runs)
        except Exception as e:  # e.g. the city gained sensors: the champion no longer fits the window
            why = f"champion v{version} cannot be scored on the new window ({type(e).__name__}: {e})"
            return Verdict(False, [f"{why}; compare and promote by hand"]), version, scores
    scores["champion"] = old.metrics
    return gate(new, old, gate_cfg), version, scores


def contract_refusals(challenger: Path, champion: Path, version: str) -> list[str]:
    """Why the challenger cannot replace champion ``version`` whatever its scores: one sentence for a different
    input (node ids, window, step, features), one for a different output (horizon, targets, quantiles, shape)."""
    from cityagent.training.gate import contract_differences

    inputs, outputs = contract_differences(challenger, champion)
    refusals = []
    if inputs:  # e.g. the city gained sensors
        refusals.append(
            f"the challenger expects a different input than champion v{version} ({'; '.join(inputs)}); promote it by "
            "hand with --force once clients send the new input"
        )
    if outputs:  # e.g. another horizon: a server hot-swapping to it would refuse and keep the champion
        refusals.append(
            f"the challenger answers a different output than champion v{version} ({'; '.join(outputs)}); promote it "
            "by hand with --force once clients read the new output"
        )
    return refusals


def retrain(
    task: str,
    cfg: AgentConfig | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    gate_cfg: "GateConfig | None" = None,
    actor: str = "cityagent-retrain",
    say: Callable[[str], None] = log.info,
) -> RetrainResult:
    """Train a challenger for ``task`` on the newest hub data and promote it only if it wins the gate.

    Args:
        task: ``traffic``, ``demand`` or ``risk`` (``configs/<task>.yaml``).
        cfg: the agent config (hub, ``retrain.overrides``, ``retrain.gate``, drift bins); default configs/agent.yaml.
        overrides: dotted training-config overrides on top, e.g. ``{"train.workers": 0}``.
        gate_cfg: promotion rules (default: ``retrain.gate`` or configs/gate.yaml).
        actor: who the registry history names.
        say: progress lines.

    Raises:
        CityAgentError: training, export or evaluation failed; the champion is untouched and, when the registered
            model exists, the failure is recorded in its history.
    """
    from cityagent.training.task import task_name
    from cityagent.training.tracking import tracking_uri

    cfg = cfg or load_agent_config()
    run_cfg = retrain_config(task, cfg, overrides)  # a config error: nothing ran, nothing to record
    uri, name = tracking_uri(run_cfg.tracking.tracking_uri), task_name(run_cfg.task)
    version = None
    try:  # from here on, a SIGTERM (even during the imports of the first seconds) is recorded as a failure
        from cityagent.training.export import export_run
        from cityagent.training.fit import fit
        from cityagent.training.gate import load_gate_config
        from cityagent.training.registry import promote, record_decision

        gate_cfg = gate_cfg or load_gate_config(cfg.retrain.gate)
        where = "in-process" if run_cfg.train.workers == 0 else f"on Ray with {run_cfg.train.workers} workers"
        say(f"{task}: training {run_cfg.model.name} {where}")
        fit_result = fit(run_cfg)
        if fit_result.info.get("diverged"):  # nothing to export or judge; the champion stays
            raise CityAgentError(f"{task}: {fit_result.info['diverged']}")
        data = fit_result.task  # the newest hub data, as read once by fit: the gate's window is its test split
        if cfg.drift.bins != DriftConfig().bins:  # fit logged the reference with the default bins
            log_reference(fit_result.run_id, data, fit_result.metrics, cfg.drift.bins, uri)
        exported = export_run(fit_result.run_id, tracking_uri=uri, alias="challenger", actor=actor)
        version = exported.version
        say(f"{task}: registered {name} v{version} as challenger; gating it against the champion")
        verdict, champion, scores = judge(exported.onnx_path, name, data, uri, gate_cfg)
        reason = f"gate on the newest {min(len(data.test), GATE_WINDOWS)} test windows: " + "; ".join(verdict.reasons)
        with uninterrupted():  # a SIGTERM now lets the alias move and its history entry finish together
            if verdict.promote:
                promote(name, version, reason=reason, actor=actor, tracking_uri=uri)
            else:
                record_decision(
                    name, version, reason=reason, actor=actor, metrics=scores["challenger"], tracking_uri=uri
                )
    except (Exception, SystemExit, Interrupted) as e:  # SystemExit: Lightning's and Ray's answers to SIGTERM
        error = _tracking_error(e, task, uri) or e
        _record_failure(name, version, error, actor, uri)
        if error is e:
            raise
        raise error from e
    say(f"{task}: v{version} {'promoted to champion' if verdict.promote else 'refused, champion stays'}: {reason}")
    from cityagent.training.housekeeping import drop_training_files

    # the MLflow run and registry hold the weights and ONNX file; a failed retrain's stay (with its logs) for a look
    dropped = drop_training_files(fit_result.run_id, fit_result.info)
    if dropped:
        log.info("%s: deleted the local training files of run %s: %s", task, fit_result.run_id, dropped)
    result = RetrainResult(
        task, name, fit_result.run_id, str(version), champion, verdict.promote, verdict.reasons, scores
    )
    if cfg.retrain.keep_versions is not None:
        result.pruned = _prune(name, cfg.retrain.keep_versions, uri, say)
    return result


def _prune(name: str, keep: int, uri: str, say: Callable[[str], None]) -> list[str]:
    """``retrain.keep_versions``: the verdict stands whatever happens here, so a failure is said, not raised."""
    from cityagent.training.registry.prune import prune_versions

    try:
        report = prune_versions(name, keep=keep, tracking_uri=uri)
    except (CityAgentError, OSError) as e:
        log.warning("%s: pruning old versions failed: %s", name, e)
        say(f"{name}: pruning old versions failed ({e}); they stay until the next retrain")
        return []
    if report.pruned:
        say(f"{name}: pruned {len(report.pruned)} old version(s) (retrain.keep_versions: {keep})")
    return report.pruned


def _tracking_error(error: BaseException, task: str, uri: str) -> TrackingUnreachable | None:
    """A failure while the http(s) tracking server is down, as one line naming it and what to do (MLflow's own
    error is a multi-line retry trace); None when the store answers, is local, or the error already says so."""
    if not isinstance(error, Exception) or isinstance(error, TrackingUnreachable):
        return None
    why = unreachable(uri)
    if why is None:
        return None
    return TrackingUnreachable(
        f"MLflow tracking server {uri} not reachable ({why}) while retraining {task}; start it again (or unset "
        f"MLFLOW_TRACKING_URI for the local store) and rerun `cityagent retrain --now {task}`",
        uri,
        why,
    )


def _record_failure(name: str, version: str | None, error: BaseException, actor: str, uri: str) -> None:
    """Append the failure to the registry history; never raises (the failure itself is what the caller reports)."""
    from cityagent.training.registry import record_decision

    if isinstance(error, TrackingUnreachable) or unreachable(uri) is not None:
        log.info("the failed retrain of %s is not in its history: tracking server %s is not reachable", name, uri)
        return
    why = "stopped by SIGTERM" if is_sigterm(error) else str(error) or type(error).__name__
    try:  # '-' when no version was registered: the entry must not name the champion's as the failed one
        record_decision(
            name, version or "-", reason=f"retrain failed: {why}", action="failed", actor=actor, tracking_uri=uri
        )
    except Exception as e:  # e.g. no registered model yet (a first training failed): nothing to record in
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        log.info("the failed retrain of %s is not in its history (%s)", name, first)
