"""The critique service: one critic and the SQLite file of its critiques.

Training data, the RewardBench callback and the ``score`` command all hold a
:class:`CritiqueStore` and ask it for critiques the same way (``fill`` what is missing, then
``lookup``), so every consumer reads critiques written by the same critic, template and cache, and
the critic is resolved once, where the store is made.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

from lightning_critrm.critique.backend import CriticBackend
from lightning_critrm.critique.backend_factory import build_backend
from lightning_critrm.critique.cache import CritiqueCache
from lightning_critrm.critique.config import CriticConfig, ResolvedCritic
from lightning_critrm.critique.fill import (
    AttachResult,
    CritiqueSummary,
    Item,
    attach_critiques,
    current,
    fill_cache,
    missing,
    requests_for_completions,
)
from lightning_critrm.critique.fingerprint import probe
from lightning_critrm.errors import NotReadyError
from lightning_critrm.records import PreferencePair

log = logging.getLogger(__name__)

CRITIQUE_COMMAND = "python -m lightning_critrm critique --config <this config>"


class CritiqueStore:
    """Critiques of one critic, generated on demand and kept in one SQLite file.

    Args:
        critic: The critic that writes (and keys) the critiques.
        path: The SQLite file. Several stores (critics) may share one file: keys never collide.
        backend_factory: Builds the critic's backend when something must be generated (tests
            pass a fake one).
    """

    def __init__(
        self,
        critic: CriticConfig,
        path: str | Path,
        backend_factory: Callable[[CriticConfig], CriticBackend] = build_backend,
    ):
        self.critic = critic
        self.path = Path(path)
        self.backend_factory = backend_factory
        self._resolved: Optional[ResolvedCritic] = None

    @property
    def resolved(self) -> ResolvedCritic:
        """The critic pinned to its model's fingerprint, which keys every critique. Probed once;
        where the model cannot be seen from here, the fingerprint recorded when the critiques were
        written is used, so a job that only reads them needs neither the weights nor the endpoint."""
        if self._resolved is None:
            name = self.critic.identity_json()
            with CritiqueCache(self.path) as cache:
                live, recorded = probe(self.critic), cache.recorded_fingerprint(name)
                if live is None and recorded is None:
                    raise NotReadyError(
                        f"critic {self.critic.model!r} ({self.critic.effective_backend}) cannot be reached "
                        f"from here to identify its model, and {self.path} holds no critique of it: check "
                        "critic.model (a folder, a downloaded hub model, or a running endpoint)"
                    )
                if live is None:
                    log.info(f"critic {self.critic.model!r} not reachable here: reading its critiques "
                             "as recorded")
                elif live != recorded:
                    cache.record_fingerprint(name, live)
            self._resolved = ResolvedCritic.pin(self.critic, live or recorded)
        return self._resolved

    @classmethod
    def for_critic(cls, critic: CriticConfig, default_dir: str | Path) -> "CritiqueStore":
        """The store ``critic.cache.path`` names, or ``<default_dir>/critiques.sqlite``."""
        return cls(critic, critic.cache.path or Path(default_dir) / "critiques.sqlite")

    def with_critic(self, critic: CriticConfig) -> "CritiqueStore":
        """Another critic's critiques in the same file (unless that critic names its own file)."""
        return CritiqueStore(critic, critic.cache.path or self.path, self.backend_factory)

    def __repr__(self) -> str:
        return f"CritiqueStore({self.critic.model!r} via {self.critic.backend}, {str(self.path)!r})"

    def fill(
        self, items: Iterable[Item], require_cached: Optional[bool] = None, progress: bool = True
    ) -> CritiqueSummary:
        """Generate the critiques of ``items`` that are missing (each distinct completion once).

        ``require_cached`` (default: the critic's ``cache.require_cached``) raises instead,
        naming the ``critique`` subcommand, so no job waits on a critic it was told not to run.
        """
        critic = self.resolved
        requests = requests_for_completions(items, critic)
        with CritiqueCache(self.path) as cache:
            if critic.cache.require_cached if require_cached is None else require_cached:
                absent = len(missing(requests, cache, critic.engine.max_model_len))
                if absent:
                    raise NotReadyError(
                        f"{absent} of {len(requests)} critiques are not in {self.path} and "
                        f"critic.cache.require_cached is true; generate them first with: {CRITIQUE_COMMAND}"
                    )
            return fill_cache(requests, critic, cache, self.backend_factory, progress=progress)

    def lookup(self, items: Sequence[Item]) -> list[Optional[str]]:
        """The stored critique of each item, ``None`` where it failed or was never generated."""
        return [critique for critique, _ in self.read(items)]

    def read(self, items: Sequence[Item]) -> list[tuple[Optional[str], Optional[str]]]:
        """``(critique, None)`` for each item with one, ``(None, error)`` where its generation
        failed, ``(None, None)`` where it was never generated."""
        critic = self.resolved
        keys = [critic.key(prompt, completion) for prompt, completion in items]
        with CritiqueCache(self.path) as cache:
            stored = current(cache.get_many(keys), critic.engine.max_model_len)
        rows = [stored.get(k) for k in keys]
        return [(None, None) if row is None else (row.critique, None) if row.status == "ok"
                else (None, row.error or "failed") for row in rows]

    @contextmanager
    def backend_kept(self, start: bool = False,
                     concurrent: bool = False) -> Iterator[Optional[CriticBackend]]:
        """Within this block the critic's backend (a vLLM engine, an endpoint's connections) is
        built at its first use and kept for every ``fill``, then closed: a long-lived caller such as
        the reward server pays an engine's start once, not per call. ``start``: build it on entry
        (and yield it), so the start is paid before the first call rather than inside it.
        ``concurrent``: the backend that overlaps ``fill`` calls from several threads where there
        is one (see :func:`~lightning_critrm.critique.backend_factory.build_backend`)."""
        built: list[_KeptOpen] = []
        lock = threading.Lock()
        factory = self.backend_factory

        def kept(config: CriticConfig) -> CriticBackend:
            with lock:
                if not built:
                    backend = factory(config, concurrent=True) if concurrent else factory(config)
                    built.append(_KeptOpen(backend))
                return built[0]

        self.backend_factory = kept
        try:
            yield kept(self.resolved) if start else None
        finally:
            self.backend_factory = factory
            if built:
                built[0].backend.close()

    def attach(self, pairs: Sequence[PreferencePair]) -> AttachResult:
        """``pairs`` with both critiques; pairs whose critique failed are dropped and counted."""
        with CritiqueCache(self.path) as cache:
            return attach_critiques(pairs, self.resolved, cache)


class _KeptOpen(CriticBackend):
    """A backend whose ``close`` after each fill is ignored (:meth:`CritiqueStore.backend_kept`
    closes the one it wraps)."""

    def __init__(self, backend: CriticBackend):
        super().__init__(backend.config)
        self.backend = backend
        self.concurrent = backend.concurrent

    def generate(self, requests):
        return self.backend.generate(requests)
