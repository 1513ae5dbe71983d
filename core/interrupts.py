"""Where a SIGTERM may break in. The handlers that turn a SIGTERM into an exception (the retrain scheduler's,
``cityagent train``'s) raise it through ``interrupt()``, which holds it back inside two kinds of block:

- ``deferred()``: a write that must not be cut in half, such as one call into the MLflow store (an exception raised
  inside SQLAlchemy mid-transaction can leave the store unable to mark the run FAILED); the exception is raised as
  the outermost block ends.
- ``uninterrupted()``: work that must finish with the run, such as an alias move and its history entry; the
  exception is not raised at all (the caller's loop still stops, from its own flags).

Python runs signal handlers in the main thread only, so plain counters suffice and the blocks mean nothing
elsewhere.
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager

_held = 0  # depth of uninterrupted() blocks
_deferring = 0  # depth of deferred() blocks (main thread)
_pending: BaseException | None = None  # an interrupt that came inside deferred(), raised as it ends


def held() -> bool:
    """Inside ``uninterrupted()``: a SIGTERM must let the block, and the run, finish."""
    return _held > 0


def interrupt(error: BaseException) -> None:
    """Raise ``error`` now, or as the outermost ``deferred()`` block ends; call it from a signal handler."""
    global _pending
    if _deferring and threading.current_thread() is threading.main_thread():
        _pending = _pending or error
        return
    raise error


@contextmanager
def deferred() -> Iterator[None]:
    """A SIGTERM handled inside the block raises only as the block ends, after the write inside it finished (or
    failed: the interrupt is then raised with that failure as its context)."""
    global _deferring, _pending
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1
        if not _deferring and _pending is not None:
            error, _pending = _pending, None
            raise error


@contextmanager
def uninterrupted() -> Iterator[None]:
    """SIGTERM does not interrupt the block (e.g. an alias move and its history entry are never split); the loop
    still stops once the run ends."""
    global _held
    _held += 1
    try:
        yield
    finally:
        _held -= 1
