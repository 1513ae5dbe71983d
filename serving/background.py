"""Run an InferenceServer on its own event loop in a background thread (tests, notebooks, benchmarks)."""

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any

from cityagent.serving.config import ServingConfig
from cityagent.serving.server import InferenceServer


class ServerThread:
    """`with ServerThread(cfg) as s:` starts the server, loads the models and stops it on exit.

    Args:
        cfg: the serving config; port 0 picks a free port (read `s.address` or `s.port`).
        timeout_s: how long start() waits for the models to load.
    """

    def __init__(self, cfg: ServingConfig, timeout_s: float = 120.0) -> None:
        self.cfg, self.timeout_s = cfg, timeout_s
        self.server: InferenceServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="inference-server", daemon=True)

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def address(self) -> str:
        return f"{self.cfg.host}:{self.port}"

    def start(self) -> "ServerThread":
        self._thread.start()
        if not self._started.wait(self.timeout_s):
            raise TimeoutError(f"the server did not start within {self.timeout_s} s")
        if self._error is not None:
            self._thread.join()
            raise self._error
        return self

    def call(self, coro: Coroutine) -> Any:
        """Run a coroutine on the server's loop and wait for it (e.g. `s.call(s.server.store.poll_once())`)."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(self.timeout_s)

    def stop(self) -> None:
        if self._loop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(self.timeout_s)

    def __enter__(self) -> "ServerThread":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        try:
            self.server = InferenceServer(self.cfg)
            await self.server.start()
        except BaseException as e:
            self._error = e
            self._started.set()
            return
        self._started.set()
        await self._stop.wait()
        await self.server.stop()
