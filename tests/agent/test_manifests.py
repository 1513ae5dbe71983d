"""The Kubernetes manifests in deploy/k8s validate against their schemas, offline, and fit together.

Core objects (Deployment, Service, CronJob, ...) are checked against the Kubernetes OpenAPI schemas that the
kubernetes-validate package ships (strict: unknown fields are errors, as with kubectl's field validation); KubeRay
objects against the trimmed CRD schemas in deploy/schemas, whose pod templates use the same Kubernetes schemas.
"""

import copy
import functools
import json
import re
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
import yaml
from referencing import Registry, Resource

from cityagent.agent.agent_config import AgentConfig, load_agent_config
from cityagent.serving.config import load_serving_config

kubernetes_validate = pytest.importorskip(
    "kubernetes_validate", reason="kubernetes-validate (the offline Kubernetes schemas) is not installed"
)

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S_VERSION = "1.30.0"  # oldest Kubernetes the manifests target (gRPC probes and CronJob timeZone are GA)
HAND_MADE_SECRETS = {"cityagent-db"}  # created with kubectl, documented in docs/operations.md, never committed


def _schema_dir() -> Path:
    return Path(str(resources.files("kubernetes_validate") / "kubernetes-json-schema" / f"v{K8S_VERSION}-local-strict"))


@functools.cache
def _registry() -> Registry:
    defs = json.loads((_schema_dir() / "_definitions.json").read_text())
    registry = Resource.from_contents(defs) @ Registry()
    for path in (DEPLOY / "schemas").glob("*.json"):
        registry = Resource.from_contents(json.loads(path.read_text())) @ registry
    return registry


def _schema_for(doc: dict) -> dict:
    kind, api = doc.get("kind", ""), doc.get("apiVersion", "")
    if api.startswith("ray.io/"):
        path = DEPLOY / "schemas" / f"{kind.lower()}.json"
    else:
        group_version = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api)  # apps/v1 -> apps-v1, v1 -> v1
        path = _schema_dir() / f"{kind.lower()}-{group_version}.json"
    assert path.is_file(), f"no schema for {api} {kind} (looked for {path})"
    return json.loads(path.read_text())


def schema_errors(doc: dict) -> list[str]:
    """Every schema violation of one manifest, as 'path: message'."""
    validator = jsonschema.Draft202012Validator(_schema_for(doc), registry=_registry())
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


def _docs() -> list[tuple[str, dict]]:
    out = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        out += [(f"{path.name}:{d['kind']}", d) for d in yaml.safe_load_all(path.read_text()) if d]
    return out


DOCS = _docs()


def _find(kind: str, name: str) -> dict:
    return next(d for _, d in DOCS if d["kind"] == kind and d["metadata"].get("name") == name)


@pytest.mark.parametrize(("where", "doc"), DOCS, ids=[w for w, _ in DOCS])
def test_manifest_matches_its_schema(where, doc):
    assert schema_errors(doc) == []


def test_every_part_is_there():
    kinds = {d["kind"] for _, d in DOCS}
    assert {"RayJob", "RayCronJob", "CronJob", "Deployment", "Service", "ConfigMap", "PersistentVolumeClaim"} <= kinds


@pytest.mark.parametrize(
    ("kind", "name", "path", "value", "message"),
    [
        (
            "Deployment",
            "cityagent-serving",
            "spec.template.spec.containers.0.livenessProbe.grpc.port",
            "8001",
            "is not of type 'integer'",
        ),
        (
            "Deployment",
            "cityagent-serving",
            "spec.template.spec.containers.0.readinessProbe.grpc.prot",
            8001,
            "Additional properties",
        ),
        ("Deployment", "cityagent-mlflow", "spec.replicas", "one", "is not of type 'integer'"),
        ("CronJob", "cityagent-retrain-traffic", "spec.concurrencyPolicy", 3, "is not of type 'string'"),
        ("RayJob", None, "spec.rayClusterSpec.headGroupSpec.rayStartParams.num-cpus", 0, "is not of type 'string'"),
        ("RayJob", None, "spec.rayClusterSpec.workerGroupSpecs.0.replica", 2, "Additional properties"),
        (
            "RayJob",
            None,
            "spec.rayClusterSpec.workerGroupSpecs.0.template.spec.containers.0.image",
            7,
            "is not of type",
        ),
        ("RayJob", None, "spec.submissionMode", "K8sMode", "is not one of"),
        (
            "RayCronJob",
            "cityagent-retrain-traffic",
            "spec.jobTemplate.shutdownAfterJobFinishes",
            "yes",
            "is not of type 'boolean'",
        ),
    ],
)
def test_a_broken_manifest_fails(kind, name, path, value, message):
    doc = copy.deepcopy(
        next(d for _, d in DOCS if d["kind"] == kind and (name is None or d["metadata"].get("name") == name))
    )
    *parents, leaf = path.split(".")
    node = doc
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    node[leaf] = value
    errors = schema_errors(doc)
    assert any(message in e for e in errors), errors


def test_missing_required_fields_fail():
    rayjob = copy.deepcopy(_find_kind("RayJob"))
    del rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]
    assert any("'headGroupSpec' is a required property" in e for e in schema_errors(rayjob))
    cron = copy.deepcopy(_find("RayCronJob", "cityagent-retrain-traffic"))
    del cron["spec"]["schedule"]
    assert any("'schedule' is a required property" in e for e in schema_errors(cron))


def _find_kind(kind: str) -> dict:
    return next(d for _, d in DOCS if d["kind"] == kind)


def _containers(doc: dict) -> list[dict]:
    """Containers of every pod template in a manifest, wherever it nests them."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("containers"), list):
                found.extend(node["containers"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(doc)
    return found


def test_serving_probes_use_grpc_health_on_the_served_port(tmp_path):
    serving = _find("Deployment", "cityagent-serving")
    (container,) = serving["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    config = yaml.safe_load(_find("ConfigMap", "cityagent-config")["data"]["serving.yaml"])
    assert ports["grpc"] == config["port"] == 8001 and ports["metrics"] == config["metrics_port"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == ports["grpc"], probe
    assert container["readinessProbe"]["grpc"]["service"] == "inference.GRPCInferenceService"
    service = _find("Service", "cityagent-serving")
    assert service["spec"]["selector"].items() <= serving["spec"]["template"]["metadata"]["labels"].items()


def test_configmap_configs_load_into_the_typed_configs(tmp_path):
    data = _find("ConfigMap", "cityagent-config")["data"]
    (tmp_path / "agent.yaml").write_text(data["agent.yaml"])
    (tmp_path / "serving.yaml").write_text(data["serving.yaml"])
    agent = load_agent_config(tmp_path / "agent.yaml")
    assert isinstance(agent, AgentConfig) and agent.mqtt.client_id  # durable session in the cluster
    assert agent.serving.address == "cityagent-serving:8001"
    assert load_serving_config(tmp_path / "serving.yaml").host == "0.0.0.0"


def test_references_between_manifests_resolve():
    """ConfigMaps, claims and Secrets that pods name exist (Secrets: the documented hand-made one)."""
    names = {(d["kind"], d["metadata"].get("name")) for _, d in DOCS}
    for where, doc in DOCS:
        text = json.dumps(doc)
        for claim in re.findall(r'"claimName": "([^"]+)"', text):
            assert ("PersistentVolumeClaim", claim) in names, (where, claim)
        for cm in re.findall(r'"configMap": \{"name": "([^"]+)"', text):
            assert ("ConfigMap", cm) in names, (where, cm)
        for secret in re.findall(r'"secretKeyRef": \{"name": "([^"]+)"', text):
            assert secret in HAND_MADE_SECRETS, (where, secret)
        for c in _containers(doc):
            assert c["image"].startswith("cityagent:"), (where, c["name"])
    mlflow = _find("Deployment", "cityagent-mlflow")
    (container,) = mlflow["spec"]["template"]["spec"]["containers"]
    assert container["env"][0]["valueFrom"]["secretKeyRef"] == {"name": "cityagent-db", "key": "url"}
    assert "--backend-store-uri=$(MLFLOW_BACKEND_STORE_URI)" in container["args"]


def test_deployments_select_their_own_pods():
    for where, doc in DOCS:
        if doc["kind"] == "Deployment":
            labels = doc["spec"]["template"]["metadata"]["labels"]
            assert doc["spec"]["selector"]["matchLabels"].items() <= labels.items(), where


def test_retrain_jobs_run_the_locked_retrain_command():
    cron = _find("CronJob", "cityagent-retrain-traffic")
    (container,) = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert container["args"][:3] == ["retrain", "--now", "traffic"]
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    agent = yaml.safe_load(_find("ConfigMap", "cityagent-config")["data"]["agent.yaml"])
    assert cron["spec"]["schedule"] == agent["retrain"]["schedule"]["traffic"]
    assert cron["spec"]["timeZone"] == agent["retrain"]["timezone"]
    ray_cron = _find("RayCronJob", "cityagent-retrain-traffic")
    assert ray_cron["spec"]["jobTemplate"]["entrypoint"].startswith("cityagent retrain --now traffic")


def test_dockerfile_builds_the_cli_image_from_the_pinned_set():
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", text, re.M)
    assert "download.pytorch.org/whl/cpu" in text and "-c constraints.txt" in text
    assert re.search(r'^ENTRYPOINT \[.*"cityagent"\]', text, re.M)
    for folder in ("core", "hub", "models", "training", "serving", "agent", "configs"):
        assert re.search(rf"^COPY {folder} {folder}$", text, re.M), folder
