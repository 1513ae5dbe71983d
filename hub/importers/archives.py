"""Opening public dataset files: existence checks and pickles read straight from tar or zip archives.

The pickles are unpickled with an allow-list (numpy arrays and plain containers only), so a tampered archive
cannot run code; nothing is extracted to disk.
"""

import pickle
import tarfile
import zipfile
import zlib
from pathlib import Path
from typing import IO, Any

import numpy as np

from cityagent.errors import HubError

try:  # numpy >= 2 moved the array reconstructor; pickles written by numpy 1 name the old module
    from numpy._core.multiarray import _reconstruct, scalar
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct, scalar

_ALLOWED = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.multiarray", "scalar"): scalar,
    ("numpy._core.multiarray", "scalar"): scalar,
}
READ_ERRORS = (OSError, EOFError, zlib.error, tarfile.TarError, zipfile.BadZipFile, pickle.UnpicklingError)


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a dataset pickle")
        return _ALLOWED[(module, name)]


# importer kind → the file it reads, for errors that name the right importer for a file given to the wrong one
READS = {
    "uctb": "UCTB tar.gz archive",
    "gsnet": "GSNet .npz or chicago.zip",
    "jonas": "JONAS .npz",
    "tgcn-csv": "T-GCN speed-matrix CSV",
}


ADJACENCY = "an adjacency matrix CSV (headerless rows of 0 and 1)"
# what a file no importer reads looks like -> what to do with it instead
NOT_IMPORTED = {
    "a Parquet file": "no importer reads Parquet: a long-format table goes straight into a hub folder as "
    "<table>.parquet (README, 'Your own data')",
    "a hub table CSV": "no import is needed: put it in a hub folder as <table>.csv with a hub.json "
    "(README, 'Your own data'), then run `cityagent hub validate DIR`",
}


def _csv_look(text: str) -> tuple[str | None, str | None]:
    from cityagent.hub.schema import TABLES

    first = [t.strip() for t in text.splitlines()[0].split(",")]
    if any(set(t.required) <= set(first) for t in TABLES.values()):
        return None, f"a hub table CSV (columns {', '.join(first[:6])})"
    zero_one = all(t in ("0", "1", "0.0", "1.0") for t in first)
    if len(first) > 1 and zero_one and any(float(t) == 0 for t in first):  # a row of 1s is weather codes
        return "tgcn-csv", ADJACENCY
    return "tgcn-csv", f"a {READS['tgcn-csv']}"


def sniff(path: Path) -> tuple[str | None, str | None]:
    """The importer kind whose files look like ``path`` (by its first bytes and name), and what the file looks like
    (``a Parquet file``); either is None when not known."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return None, None
    if not head:
        return None, "an empty file"
    if head[:4] == b"PAR1":
        return None, "a Parquet file"
    if head[:2] == b"\x1f\x8b" or tarfile.is_tarfile(path):
        return "uctb", f"a {READS['uctb']}"
    if head[:4] == b"PK\x03\x04":  # .npz files are zip archives too
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        except READ_ERRORS:
            return None, None
        if any("all_data" in n for n in names):
            return "gsnet", f"a {READS['gsnet']}"
        if any(n in ("taxi.npy", "bike.npy") for n in names):
            return "jonas", f"a {READS['jonas']}"
        return None, None
    try:
        text = head.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None, None
    return _csv_look(text) if "," in text and "\n" in text else (None, None)


def wrong_importer(path: Path, kind: str) -> str | None:
    """``"<path> looks like a CSV ..., not the <file> the 'uctb' importer reads; ..."`` when ``path`` is another
    importer's kind of file or one no importer reads, else None (the file is damaged, or of no kind we know)."""
    other, look = sniff(path)
    if look is None or other == kind:
        return None
    wrong = f"{path} looks like {look}, not the {READS[kind]} the {kind!r} importer reads"
    if look == ADJACENCY:
        return (
            f"{wrong}; it is the --adj file of the 'tgcn-csv' importer: "
            f"`cityagent hub import tgcn-csv SPEED.csv --adj {path} --out DIR`"
        )
    if other is not None:
        return (
            f"{wrong}; import it with the {other!r} importer (`cityagent hub import {other} {path} ...`, "
            f"or import_dataset({other!r}, ...))"
        )
    fix = next((todo for what, todo in NOT_IMPORTED.items() if look.startswith(what)), None)
    return f"{wrong}; {fix}" if fix else None


def unreadable(path: Path, what: str, e: Exception) -> str:
    """Why ``path`` could not be read as ``what``, without numpy's advice to unpickle an unknown file."""
    if "allow_pickle" in str(e):  # numpy found neither a zip (.npz) nor a .npy header
        return (
            f"{path} is not {what}: it is neither an .npz (zip) archive nor a .npy array, so the file is "
            f"corrupt or of another kind; re-download it"
        )
    return f"{path} is not {what} ({e}); re-download the file"


def require_file(path: str | Path, what: str) -> Path:
    """``path`` as a Path, or a HubError naming the missing ``what`` (e.g. 'UCTB archive')."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise HubError(f"{what} {p} does not exist or is not a file; check the path (see shared/data/*/SOURCES.md)")
    return p


def load_pickle(fh: IO[bytes], where: str) -> Any:
    """Unpickle numpy arrays, dicts, lists and scalars from ``fh``; ``where`` names the source in errors."""
    try:
        return _ArrayUnpickler(fh, encoding="latin1").load()
    except (*READ_ERRORS, ValueError, TypeError, AttributeError) as e:
        raise HubError(f"{where} is not a readable dataset pickle ({e}); re-download the file") from e


def tar_pickle(path: Path) -> tuple[str, Any]:
    """The one ``*.pkl`` member of a tar(.gz) archive: its name and its unpickled content."""
    try:
        with tarfile.open(path, "r:*") as tf:
            members = [m for m in tf.getmembers() if m.isfile() and m.name.endswith(".pkl")]
            if len(members) != 1:
                names = [m.name for m in members]
                raise HubError(f"{path} must hold exactly one .pkl file, found {names}; use a UCTB data archive")
            fh = tf.extractfile(members[0])
            assert fh is not None  # isfile() members always have a file object
            return members[0].name, load_pickle(fh, f"{path}:{members[0].name}")
    except READ_ERRORS as e:
        raise HubError(
            wrong_importer(path, "uctb") or f"{path} is not a readable tar.gz archive ({e}); re-download the file"
        ) from e


def zip_pickle(zf: zipfile.ZipFile, member: str, path: Path) -> Any:
    """Unpickle ``member`` of an open zip archive; a missing member lists what the archive holds."""
    if member not in zf.namelist():
        pkls = sorted(n for n in zf.namelist() if n.endswith(".pkl"))
        raise HubError(f"{path} has no member {member}; it holds {pkls[:8]}{' ...' if len(pkls) > 8 else ''}")
    try:
        with zf.open(member) as fh:
            return load_pickle(fh, f"{path}:{member}")
    except READ_ERRORS as e:
        raise HubError(f"{path}:{member} cannot be read ({e}); re-download the archive") from e
