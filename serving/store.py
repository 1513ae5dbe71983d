"""The model store: loads each configured model, polls its alias (or file) and hot-swaps new versions.

A swap builds and smoke-tests the new session off the event loop, then replaces the served version in one
synchronous step; requests already queued on the old version finish there, new ones go to the new one. A version
that fails to download, load or smoke-test, or that changes the interface clients use (compat.py), leaves the old
one serving, is logged once and is not retried until the alias (or file) moves again.
"""

import asyncio
import contextlib
import logging
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path

from cityagent.serving.batching import Arrivals, Batcher
from cityagent.serving.compat import interface_changes
from cityagent.serving.config import ServingConfig
from cityagent.serving.errors import ModelLoadError, ModelNotFound, ModelUnavailable
from cityagent.serving.metrics import ServingMetrics
from cityagent.serving.session import OrtModel
from cityagent.serving.sources import LocalSource, RegistrySource, scratch_dir
from cityagent.serving.spec import ModelSpec

log = logging.getLogger(__name__)
DEFAULT_ALIAS = "champion"  # what the agent and the gate promote to


@dataclass
class Served:
    """A model version that answers requests."""

    spec: ModelSpec
    model: OrtModel
    batcher: Batcher

    @property
    def version(self) -> str:
        return self.model.version


@dataclass
class _Slot:
    spec: ModelSpec
    source: RegistrySource | LocalSource
    served: Served | None = None
    failed: str | None = None  # the last version that failed; retried only after the alias moves again
    last_error: str | None = None
    unresolved: bool = False  # the last poll could not read the alias (registry out)
    draining: set = field(default_factory=set)  # close() tasks of swapped-out versions


class ModelStore:
    """Every configured model, by wire name and version.

    Args:
        specs: the models to serve; several specs may share a name (e.g. champion and challenger aliases): a
            request without a version gets the ``champion`` alias's version, or the first one listed when no spec of
            the name is the champion; a request may name an alias (``challenger``) instead of a version number.
        cfg: the serving config (ORT options, batching, registry polling).
        executor: threads that run ORT batches.
        metrics: Prometheus metrics.
    """

    def __init__(self, specs: list[ModelSpec], cfg: ServingConfig, executor: Executor, metrics: ServingMetrics) -> None:
        self.cfg, self._executor, self.metrics = cfg, executor, metrics
        registry = RegistrySource(cfg.registry.tracking_uri) if any(s.kind == "registry" for s in specs) else None
        local = LocalSource()
        self._slots = [_Slot(s, registry if s.kind == "registry" else local) for s in specs]
        self._poller: asyncio.Task | None = None
        self._arrivals = Arrivals()  # one count for all models, so inline runs notice every model's clients

    async def start(self) -> None:
        """Load every model (raising ModelLoadError if one cannot be served), then start polling."""
        for slot in self._slots:
            version = await asyncio.to_thread(slot.source.current, slot.spec)
            await self._load(slot, version, initial=True)
        if self.cfg.registry.poll_interval_s > 0:
            self._poller = asyncio.get_running_loop().create_task(self._poll_forever(), name="model-store-poll")

    @property
    def ready(self) -> bool:
        return all(slot.served is not None for slot in self._slots)

    def names(self) -> list[str]:
        return list(dict.fromkeys(slot.spec.name for slot in self._slots))

    def has(self, name: str) -> bool:
        """Whether `name` is configured here (loaded or not); cheaper than `name in names()`, per request."""
        return any(slot.spec.name == name for slot in self._slots)

    def versions(self, name: str) -> list[str]:
        return list(dict.fromkeys(s.served.version for s in self._slots if s.spec.name == name and s.served))

    def get(self, name: str, version: str = "") -> Served:
        """The served version (the name's default when `version` is empty).

        Raises:
            ModelNotFound: `name` is not configured here, or no slot of it serves `version` (all loaded).
            ModelUnavailable: a slot of `name` is still loading at start-up, so the answer may yet be yes: retry.
        """
        slots = [s for s in self._slots if s.spec.name == name]
        if not slots:
            raise ModelNotFound(f"model '{name}' is not served here; served models: {self.names()}.")
        if not version:  # the champion when the name is served under several aliases, whatever their order
            slots = sorted(slots, key=lambda s: not (s.spec.by_alias and s.spec.ref == DEFAULT_ALIAS))[:1]
        for slot in slots:
            if slot.served is None:
                continue
            if not version or slot.served.version == version or (slot.spec.by_alias and slot.spec.ref == version):
                return slot.served
        if any(slot.served is None for slot in slots):
            wanted = f"model '{name}'" + (f" version '{version}'" if version else "")
            raise ModelUnavailable(f"{wanted} is still loading (the server is starting); retry shortly.")
        aliases = [s.spec.ref for s in self._slots if s.spec.name == name and s.spec.by_alias]
        also = f" or an alias ({', '.join(aliases)})" if aliases else ""
        served = ", ".join(self.versions(name))
        raise ModelNotFound(
            f"model '{name}' has no version '{version}' here; ask for a served version ({served}){also}, or leave "
            "the version empty for the default."
        )

    def _serves(self, name: str, version: str) -> bool:
        """Whether any slot (e.g. another alias of `name`) serves `version` now."""
        return any(s.spec.name == name and s.served is not None and s.served.version == version for s in self._slots)

    async def poll_once(self) -> None:
        """Re-read every alias (or local file) and swap in versions that moved."""
        for slot in self._slots:
            try:
                version = await asyncio.to_thread(slot.source.current, slot.spec)
            except Exception as e:  # a registry hiccup must not stop the poller
                self._note(slot, f"cannot resolve {slot.spec}: {e}")
                slot.unresolved = True
                continue
            if slot.unresolved:  # said once it is back, so the next outage is said again
                slot.unresolved = False
                if slot.last_error is not None and slot.last_error.startswith("cannot resolve"):
                    slot.last_error = None
                log.info("%s resolves again (version %s)", slot.spec, version)
            if slot.served is not None and version != slot.served.version and version != slot.failed:
                await self._load(slot, version)

    async def close(self) -> None:
        """Stop polling, then let every version finish what it has queued."""
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        for slot in self._slots:
            if slot.served is not None:
                await slot.served.batcher.close()
            for task in list(slot.draining):
                await task

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.registry.poll_interval_s)
            try:
                await self.poll_once()
            except Exception:  # a bug here must not end polling for good
                log.exception("polling the model sources failed; retrying in %s s", self.cfg.registry.poll_interval_s)

    async def _load(self, slot: _Slot, version: str, initial: bool = False) -> None:
        spec = slot.spec
        try:
            model = await asyncio.to_thread(self._build, slot, version, slot.served)
        except Exception as e:  # whatever breaks a new version, the old one keeps serving
            self.metrics.swaps.labels(spec.name, "failed").inc()
            error = e if isinstance(e, ModelLoadError) else ModelLoadError(f"{spec} version {version}: {e!r}")
            if initial:
                raise error from e
            slot.failed = version
            kept = slot.served.version
            self._note(slot, f"version {version} of {spec} not loaded, version {kept} keeps serving: {error}")
            return
        batcher = Batcher(model, self.cfg.batching, self._executor, self.metrics, self._arrivals)
        batcher.start()
        old, slot.served, slot.failed, slot.last_error = slot.served, Served(spec, model, batcher), None, None
        dropped = old.version if old is not None and not self._serves(spec.name, old.version) else None
        self.metrics.set_version(spec.name, version, dropped)  # another alias may still serve the old version
        self.metrics.swaps.labels(spec.name, "loaded").inc()
        log.info("serving %s version %s%s", spec.name, version, f" (was {old.version})" if old else "")
        if old is not None:  # its queued requests still finish on it
            task = asyncio.get_running_loop().create_task(old.batcher.close())
            slot.draining.add(task)
            task.add_done_callback(slot.draining.discard)

    def _build(self, slot: _Slot, version: str, served: Served | None) -> OrtModel:
        """Blocking: fetch, open and smoke-test one version, and check it can replace `served` (runs in a thread)."""
        with scratch_dir() as tmp:
            path = slot.source.fetch(slot.spec, version, Path(tmp))
            model = OrtModel(slot.spec.name, version, path, self.cfg.ort, source=f"{slot.spec} (version {version})")
        if served is not None:  # a first load has nothing its clients rely on yet
            changes = interface_changes(served.model, model)
            if changes:
                raise ModelLoadError(
                    f"{model.source} changes what clients of version {served.version} send or receive "
                    f"({'; '.join(changes)}); restart the server to serve it."
                )
        if self.cfg.registry.smoke_test:
            model.smoke_test()
        return model

    def _note(self, slot: _Slot, message: str) -> None:
        if message != slot.last_error:  # once per distinct problem, not once per poll
            log.error(message)
            slot.last_error = message
