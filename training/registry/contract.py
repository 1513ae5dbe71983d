"""The input a registered version expects (node ids, window length, step, features) and the output it answers
(horizon, target offsets, quantiles, shape), read from its ONNX metadata.

A server that serves ``champion`` hot-swaps to whatever the alias points at, so moving an alias to a version that
expects a different input, or answers in another shape, breaks every client at once (the server itself refuses the
swap and keeps the old version until restarted); ``check_same_input`` refuses such a move unless forced.
It also refuses a version whose ONNX file ONNX Runtime cannot load (truncated, corrupt): serving could not start
on it; or whose file is not the one exported (its SHA-256 differs from the version's ``cityagent.onnx_sha256`` tag),
which serving refuses too. Versions registered by hand without any ONNX file, or without cityagent metadata, are
not compared.
"""

import tempfile
from pathlib import Path
from typing import Any

import yaml
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from cityagent.downloads import quiet_downloads
from cityagent.errors import CityAgentError
from cityagent.onnx_digest import digest_mismatch, mismatch_message
from cityagent.training.onnx_meta import read_metadata

# what a client sends depends on: the same keys serving's hot swap compares (serving/compat.py CONTRACT_KEYS)
INPUT_KEYS = ("nodes", "input_len", "input_offsets", "step", "feature_names", "input_names", "input_shape")
OUTPUT_KEYS = ("horizon", "target_offsets", "quantiles", "output_names", "output_shape")  # ... and what it reads
ID_LISTS = ("nodes", "feature_names", "input_names")  # named ids: told as added / removed, not shown whole
SHOWN = 3  # ids named per difference


def _onnx_file(root: Path) -> Path | None:
    """The .onnx file of a downloaded MLflow model: the one MLmodel's onnx flavour names, else the only one."""
    mlmodel = root / "MLmodel"
    if mlmodel.is_file():
        data = ((yaml.safe_load(mlmodel.read_text()) or {}).get("flavors", {}).get("onnx") or {}).get("data")
        if data and (root / data).is_file():
            return root / data
    found = sorted(root.rglob("*.onnx"))
    return found[0] if len(found) == 1 else None


def unloadable(path: str | Path, shown: str | None = None) -> str | None:
    """Why ONNX Runtime (what serving uses) cannot load ``path``, or None when it can; ``shown`` names the file."""
    from cityagent.training.parity import ort_session

    try:
        ort_session(str(path), threads=1)
    except Exception as e:  # ORT raises several unrelated types for a bad file
        why = (str(e).strip().splitlines() or ["no detail"])[0].replace(str(path), shown or str(path))
        return f"{type(e).__name__}: {why}"
    return None


def version_contract(
    client: MlflowClient, name: str, version: str, *, check_loadable: bool = False
) -> dict[str, Any] | None:
    """The INPUT_KEYS and OUTPUT_KEYS of version ``version`` of ``name``; None when it holds no ONNX model with
    cityagent metadata.

    Versions registered by hand from other artifacts (or whose artifacts are gone) have no contract to compare.

    Raises:
        CityAgentError: with ``check_loadable``, the version holds an ONNX file ONNX Runtime cannot load, or one
            whose SHA-256 differs from the one recorded at export.
    """
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        try:
            location = client.get_model_version_download_uri(name, version)
            with quiet_downloads():
                local = Path(
                    mlflow.artifacts.download_artifacts(
                        artifact_uri=location, dst_path=tmp, tracking_uri=client.tracking_uri
                    )
                )
        except (MlflowException, OSError):
            return None
        path = local if local.suffix == ".onnx" else _onnx_file(local) if local.is_dir() else None
        if path is None:
            return None
        shown = location if path == local else f"{location.rstrip('/')}/{path.relative_to(local).as_posix()}"
        if check_loadable:
            _check_sound(client, name, version, path, shown)
        return onnx_input(path, INPUT_KEYS + OUTPUT_KEYS)


def _check_sound(client: MlflowClient, name: str, version: str, path: Path, shown: str) -> None:
    """Raise when ONNX Runtime cannot load the downloaded file, or it is not the one exported (its SHA-256 tag):
    a corrupted file may still load, and pass serving's smoke test on zeros, but answer nonsense.

    Either way, re-exporting the run registers a new, sound version (export checks the stored file, not the tag).
    """
    mv = client.get_model_version(name, version)
    why = unloadable(path, shown)
    if why is not None:
        fix = (
            f"re-export its run (cityagent export {mv.run_id}, which registers a new version)"
            if mv.run_id
            else "register a loadable model"
        )
        raise CityAgentError(
            f"{name} v{version} is not a loadable ONNX model: ONNX Runtime cannot open its file {shown} "
            f"({why}), so serving it would fail; {fix} and "
            "promote the new version, or move the alias anyway with --force (force=True)."
        )
    if digest_mismatch(path, mv.tags) is not None:
        raise CityAgentError(
            f"{mismatch_message(name, version, shown, mv.run_id)}, or move the alias anyway with --force (force=True)."
        )


def onnx_input(path: str | Path, keys: tuple[str, ...] = INPUT_KEYS) -> dict[str, Any] | None:
    """The ``keys`` (default INPUT_KEYS) an ONNX file's cityagent metadata records; None for a file without them."""
    try:
        meta = read_metadata(path)
    except Exception:  # not an ONNX file, or metadata that is not JSON: not a cityagent export
        return None
    return {k: meta[k] for k in keys if k in meta} or None


def _ids(values: list) -> str:
    shown = ", ".join(str(v) for v in values[:SHOWN])
    return shown + (", …" if len(values) > SHOWN else "")


def _list_difference(key: str, new: list, old: list) -> str:
    """E.g. ``nodes 64 instead of 16: 48 added (s16, s17, s18, …)`` or ``nodes: same ids in another order``."""
    added, removed = [v for v in new if v not in old], [v for v in old if v not in new]
    parts = [f"{len(added)} added ({_ids(added)})"] if added else []
    parts += [f"{len(removed)} removed ({_ids(removed)})"] if removed else []
    count = f"{key} {len(new)} instead of {len(old)}" if len(new) != len(old) else key
    return f"{count}: {', '.join(parts) or 'the same entries in another order'}"


def input_differences(new: dict[str, Any], old: dict[str, Any]) -> list[str]:
    """How the input ``new`` expects differs from ``old``'s, one phrase per key present in both; [] if the same."""
    return _differences(INPUT_KEYS, new, old, lists=ID_LISTS)


def output_differences(new: dict[str, Any], old: dict[str, Any]) -> list[str]:
    """How the output ``new`` answers differs from ``old``'s (e.g. ``horizon 3 instead of 1``); [] if the same."""
    return _differences(OUTPUT_KEYS, new, old, lists=("output_names",))


def _differences(keys: tuple[str, ...], new: dict[str, Any], old: dict[str, Any], lists: tuple[str, ...]) -> list[str]:
    """One phrase per key present in both that differs; ``lists`` are named sets of ids (added / removed), the other
    values are shown whole (a shape or offsets read better as ``[-1, 3, 9] instead of [-1, 1, 9]``)."""
    out = []
    for key in keys:
        if key not in new or key not in old or new[key] == old[key]:
            continue
        a, b = new[key], old[key]
        if key in lists and isinstance(a, list) and isinstance(b, list):
            out.append(_list_difference(key, a, b))
        else:
            out.append(f"{key} {_shown(a)} instead of {_shown(b)}")
    return out


def _shown(value: Any, limit: int = 60) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def check_same_input(client: MlflowClient, name: str, alias: str, holder: str | None, version: str) -> None:
    """Raise when version ``version`` cannot be loaded, or expects a different input or answers a different output
    than ``holder``, the version holding ``alias`` now (None: nobody holds it yet).

    Versions without cityagent ONNX metadata are not compared; an unloadable holder is not compared either (moving
    the alias off it is the fix).
    """
    new = version_contract(client, name, version, check_loadable=True)
    old = version_contract(client, name, holder) if holder is not None else None
    if new is None or old is None:
        return
    diffs = input_differences(new, old)
    if diffs:
        raise CityAgentError(
            f"{name} v{version} expects a different input than {alias} v{holder} ({'; '.join(diffs)}), so every "
            f"client of {alias} would break; move it only once they send the new input, with --force (force=True)."
        )
    diffs = output_differences(new, old)
    if diffs:
        raise CityAgentError(
            f"{name} v{version} answers a different output than {alias} v{holder} ({'; '.join(diffs)}), so every "
            f"client of {alias} would misread it (a running server keeps v{holder} until restarted); move it only "
            "once they read the new output, with --force (force=True)."
        )
