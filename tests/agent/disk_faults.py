"""Disk faults for tests, confined to one folder: a full disk (files open, writes fail with ENOSPC) or a read-only
one (EROFS on creating a file or folder). Tests run as root, so chmod cannot make a folder read-only."""

import builtins
import errno
import io
import os
from contextlib import contextmanager
from pathlib import Path

import pytest

WRITE_MODES = set("wax+")
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


class _FullFile:
    """A file whose writes fail as on a full disk; everything else is the real file."""

    def __init__(self, fh, path: str) -> None:
        self._fh, self._path = fh, path

    def write(self, _data) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self._path)

    def writelines(self, _lines) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self._path)

    def __getattr__(self, name: str):
        return getattr(self._fh, name)

    def __enter__(self) -> "_FullFile":
        return self

    def __exit__(self, *exc) -> None:
        self._fh.close()


class DiskFault:
    """Turn a fault on a folder on and off (``on`` starts as given)."""

    def __init__(self, folder: Path, kind: str, on: bool = True) -> None:
        self.folder, self.kind, self.on = Path(folder).resolve(), kind, on

    def hits(self, path) -> bool:
        if not self.on or isinstance(path, int):
            return False
        return Path(os.fsdecode(path)).resolve().is_relative_to(self.folder)

    def error(self, path) -> OSError:
        code = errno.ENOSPC if self.kind == "full" else errno.EROFS
        return OSError(code, os.strerror(code), os.fsdecode(path))


@contextmanager
def disk_fault(folder: Path, kind: str = "full", on: bool = True):
    """Inside, ``folder`` behaves as on a full (``kind='full'``) or read-only (``'readonly'``) disk while
    ``fault.on``; yields the fault so a test can turn it on once a listener is ready, or off to recover."""
    fault = DiskFault(folder, kind, on)
    real_open, real_os_open, real_mkdir = builtins.open, os.open, os.mkdir

    def fake_open(file, mode="r", *args, **kwargs):
        if fault.hits(file) and WRITE_MODES & set(mode):
            if fault.kind == "readonly":
                raise fault.error(file)
            return _FullFile(real_open(file, mode, *args, **kwargs), os.fsdecode(file))
        return real_open(file, mode, *args, **kwargs)

    def fake_os_open(path, flags, *args, **kwargs):
        if fault.hits(path) and fault.kind == "readonly" and flags & WRITE_FLAGS:
            raise fault.error(path)
        return real_os_open(path, flags, *args, **kwargs)

    def fake_mkdir(path, *args, **kwargs):
        if fault.hits(path) and fault.kind == "readonly" and not os.path.exists(path):
            raise fault.error(path)
        return real_mkdir(path, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:  # its own: undoing it leaves the test's other patches alone
        mp.setattr(builtins, "open", fake_open)
        mp.setattr(io, "open", fake_open)  # pathlib's Path.open
        mp.setattr(os, "open", fake_os_open)
        mp.setattr(os, "mkdir", fake_mkdir)
        yield fault
