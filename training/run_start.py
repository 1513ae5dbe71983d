"""Open the MLflow run of a training: resolved config as params, data facts, tags (task, fingerprint, git), notes."""

from typing import Any

import yaml

from cityagent.hub.protocols import TaskData
from cityagent.training.config import RunConfig
from cityagent.training.task import HubFingerprint, task_name
from cityagent.training.tracked_run import TrackedRun
from cityagent.training.tracking import experiment_name, git_commit


def run_params(cfg: RunConfig, task: TaskData, fp: HubFingerprint) -> dict[str, Any]:
    return cfg.flat() | {
        "data.task": task_name(cfg.task),
        "data.source": fp.source,
        "data.fingerprint": fp.sha256,
        "data.nodes": len(task.nodes),
        "data.features": ",".join(task.feature_names),
        "data.start": fp.start,
        "data.end": fp.end,
        **{f"data.n_{k}": v for k, v in task.counts().items()},
    }


def run_tags(cfg: RunConfig, fp: HubFingerprint, kind: str) -> dict[str, str]:
    tags = {
        "cityagent.task": task_name(cfg.task),
        "cityagent.domain": cfg.task.domain,
        "cityagent.model": cfg.model.name,
        "cityagent.model_kind": kind,
        "cityagent.hub_fingerprint": fp.sha256,
    }
    commit = git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
    return tags


def start_run(
    uri: str,
    cfg: RunConfig,
    task: TaskData,
    fp: HubFingerprint,
    kind: str,
    parent_run_id: str | None = None,
    run_name: str | None = None,
) -> TrackedRun:
    """A new MLflow run with the resolved config, data facts, tags and the task notes already logged."""
    run = TrackedRun.start(
        uri,
        experiment_name(cfg),
        run_name or f"{cfg.model.name}-{task_name(cfg.task)}",
        run_tags(cfg, fp, kind),
        parent_run_id,
    )
    run.params(run_params(cfg, task, fp))
    run.text(yaml.safe_dump(cfg.model_dump(), sort_keys=False), "config.yaml")
    run.text("\n".join(task.notes) + "\n", "task_notes.txt")
    return run
