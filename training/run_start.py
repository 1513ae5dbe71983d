"""Open the MLflow run of a training: resolved config as params, data facts, tags (task, fingerprint, git), notes."""

import contextlib
import getpass
import os
from typing import Any
from urllib.parse import urlsplit

import yaml

from cityagent.hub.protocols import TaskData
from cityagent.store_check import masked
from cityagent.training.config import RunConfig
from cityagent.training.orphans import mark_orphaned
from cityagent.training.task import HubFingerprint, task_name
from cityagent.training.tracked_run import TrackedRun, held_for
from cityagent.training.tracking import experiment_name, git_commit


def shareable(cfg: RunConfig) -> RunConfig:
    """``cfg`` as it is logged: a password in the tracking URI or a SQL hub's URL shown as ``***``, since everyone
    who reads the team's tracking server reads a run's params and config (give credentials by environment, e.g.
    PGPASSWORD, to keep URLs whole)."""
    task = cfg.task.model_copy(update={"hub": masked(cfg.task.hub) if cfg.task.hub else cfg.task.hub})
    uri = cfg.tracking.tracking_uri
    tracking = cfg.tracking.model_copy(update={"tracking_uri": masked(uri) if uri else uri})
    return cfg.model_copy(update={"task": task, "tracking": tracking})


def run_params(cfg: RunConfig, task: TaskData, fp: HubFingerprint) -> dict[str, Any]:
    return shareable(cfg).flat() | {
        "data.task": task_name(cfg.task),
        "data.source": masked(fp.source),
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
    try:  # who made the run, on a server the team shares (MLflow's fluent API sets it; the client API does not)
        tags["mlflow.user"] = getpass.getuser()
    except (KeyError, OSError):  # a container user without a name
        pass
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
    """A new MLflow run with the resolved config, data facts, tags and the task notes already logged. Starting a
    top-level run also ends as KILLED its experiment's runs left RUNNING by a dead process of this host
    (``mark_orphaned``)."""
    if urlsplit(uri).password:  # MLflow prints "View run" links with the URI's credentials in them
        os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    run = None
    try:
        with held_for(uri):  # a SIGTERM while the run is created is raised once there is a run to mark
            run = TrackedRun.start(
                uri,
                experiment_name(cfg),
                run_name or f"{cfg.model.name}-{task_name(cfg.task)}",
                run_tags(cfg, fp, kind),
                parent_run_id,
            )
        if parent_run_id is None:  # a sweep's child runs belong to a process already checked at its parent's start
            mark_orphaned(run.client, [run.experiment_id])
        run.params(run_params(cfg, task, fp))
        run.text(yaml.safe_dump(shareable(cfg).model_dump(), sort_keys=False), "config.yaml")
        run.text("\n".join(task.notes) + "\n", "task_notes.txt")
    except BaseException as e:  # artifacts the store cannot take, a SIGTERM: the run must not stay RUNNING
        if run is not None:
            with contextlib.suppress(Exception):  # a store that is down cannot take this either; its error is raised
                run.__exit__(type(e), e, e.__traceback__)  # marks it FAILED (KILLED for Ctrl-C) as `with run` would
        raise
    return run
