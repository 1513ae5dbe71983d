"""The SHA-256 that export records for a registered ONNX file, checked wherever the file is fetched again (serving,
promote, a re-export): a file corrupted or replaced in the artifact store must not pass for the version it was.

Training and serving share it; serving never imports training.
"""

import hashlib
from collections.abc import Mapping
from pathlib import Path

DIGEST_TAG = "cityagent.onnx_sha256"  # a model version tag, set by `cityagent export` (training/export.py)
_CHUNK = 1 << 20


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of the file at ``path`` (read in 1 MiB chunks: a model can be hundreds of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def digest_mismatch(path: str | Path, tags: Mapping[str, str]) -> str | None:
    """The file's own SHA-256 when it differs from the one ``tags`` record; None when it matches, or when no digest
    was recorded (versions registered before the tag, or by hand: accepted as before)."""
    recorded = tags.get(DIGEST_TAG)
    if not recorded:
        return None
    actual = file_sha256(path)
    return None if actual == recorded else actual


def mismatch_message(name: str, version: str, file: str, run_id: str | None) -> str:
    """One sentence for a version whose ONNX file is not the one exported, with what to do."""
    fix = (
        f"re-register it: cityagent export {run_id} (a new version of the same run) and promote that"
        if run_id
        else "register a sound copy of the model as a new version and promote that"
    )
    return (
        f"{name} v{version}: {file} does not match the SHA-256 recorded at export "
        f"(artifact corrupted or replaced in the artifact store); {fix}"
    )
