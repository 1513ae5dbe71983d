"""Local writes that survive a crash or a full disk: JSON-lines appends, reading them back, probing a folder.

A process killed mid-append (or a disk that fills up) can leave a JSON-lines file ending in a torn line. Appends
therefore start on a fresh line and are fsynced, and readers skip a line that is not JSON with one warning naming
the file and line, so one torn line never stops every later reader.
"""

import errno
import json
import logging
import os
import secrets
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)
PROBE_BYTES = 4096  # a full disk often still takes an empty file; a page of data and an fsync it does not
_warned: set[tuple[str, int]] = set()  # (file, line) already warned about: said once per process, not per read


def append_lines(path: Path, lines: Iterable[str]) -> None:
    """Append ``lines`` (each without its newline) to ``path``, flushed and fsynced before returning.

    A file left ending in a torn line gets a newline first, so the torn line stays alone and the new ones whole.
    """
    text = "".join(f"{line}\n" for line in lines)
    if not text:
        return
    with open(path, "a+b") as fh:
        if fh.tell() > 0:
            fh.seek(-1, os.SEEK_END)
            if fh.read(1) != b"\n":
                text = "\n" + text
        fh.write(text.encode("utf-8"))
        fh.flush()
        os.fsync(fh.fileno())


def parse_line(path: Path, number: int, line: bytes | str) -> dict | None:
    """Line ``number`` (from 1) of ``path`` as JSON, or None (with one warning) when it is not a JSON object."""
    try:
        value = json.loads(line)
    except ValueError:
        value = None
    if isinstance(value, dict):
        return value
    if (str(path), number) not in _warned:
        _warned.add((str(path), number))
        log.warning("%s line %d is not JSON (a write cut short?); skipped it: remove that line", path, number)
    return None


def read_lines(path: Path) -> Iterator[dict]:
    """Every JSON line of ``path`` in order, skipping blank lines and (with a warning) lines that are not JSON."""
    if not path.is_file():
        return
    for number, line in enumerate(path.read_bytes().splitlines(), 1):
        if line.strip():
            value = parse_line(path, number, line)
            if value is not None:
                yield value


def write_problem(folder: Path) -> OSError | None:
    """Why ``folder`` cannot take new files (created if missing): read-only, no permission, or full; else None.

    Writes, fsyncs and removes a small probe file, so a full disk is caught as well as a read-only one.
    """
    probe = folder / f".write-probe-{secrets.token_hex(4)}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(probe, "wb") as fh:
            fh.write(b"\0" * PROBE_BYTES)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as e:
        return e
    finally:
        try:
            probe.unlink(missing_ok=True)
        except OSError:
            pass  # a folder that took the probe but will not drop it: the write itself is what was asked about
    return None


def write_advice(error: OSError) -> str:
    """What to do about ``error``, a failed write: free space, or make the place writable."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return "free space on its disk"
    if error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return "make it writable"
    return "fix that"


def why(error: OSError) -> str:
    """``No space left on device`` rather than ``[Errno 28] No space left on device: '…'``."""
    return error.strerror or str(error) or type(error).__name__


def write_atomic(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """``write`` the file ``path`` under a temporary name (``.<name>.tmp``, which no reader lists), fsync it, rename it:
    readers see the old file or the whole new one, and a crash cannot leave a truncated one."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def sync_dir(folder: Path) -> None:
    """fsync ``folder`` itself, so a rename or delete in it is on disk before what depends on it happens."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
