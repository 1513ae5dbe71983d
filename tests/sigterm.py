"""What Kubernetes or cron's timeout does to a running command: SIGTERM once it is doing the work under test."""

import os
import signal
import subprocess
import time
from collections.abc import Callable


def sigterm_when(
    cmd: list[str], ready: Callable[[], bool], wait: float, env: dict[str, str] | None = None
) -> tuple[int, str]:
    """Start ``cmd``; once ``ready()`` (checked every 0.3 s, at most ``wait`` s) send it SIGTERM. Returns its exit
    code and output (stdout and stderr); fails, with the output, when it ends or times out before it is ready."""
    env = dict(os.environ) if env is None else env
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + wait
    try:
        while not ready():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate(timeout=10)[0]
            time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, out
