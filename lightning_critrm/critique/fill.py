"""Filling the critique cache (generating only what it lacks), and attaching cached critiques to pairs."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Optional

from tqdm.auto import tqdm

from lightning_critrm import console
from lightning_critrm.critique.backend import CriticBackend, Generation
from lightning_critrm.critique.backend_factory import build_backend
from lightning_critrm.critique.cache import CritiqueCache, CritiqueRow
from lightning_critrm.critique.config import CriticConfig
from lightning_critrm.records import Message, PreferencePair
from lightning_critrm.signals import sigterm_raises_systemexit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CritiqueRequest:
    key: str
    prompt: tuple[Message, ...]
    completion: str

    @property
    def size(self) -> int:
        return len(self.completion) + sum(len(m["content"]) for m in self.prompt)


@dataclass
class CritiqueSummary:
    """What a ``critique`` pass did."""

    requested: int = 0
    cached: int = 0
    generated: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    too_long: int = 0  # failed earlier as too long for the critic's context, not tried again

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.seconds if self.seconds else 0.0

    def __str__(self) -> str:
        too_long = (
            f", {self.too_long} still too long for the critic "
            "(set critic.engine.max_model_len above their length to retry)"
            if self.too_long
            else ""
        )
        return (
            f"critiques: {self.requested} requested, {self.cached} already cached, {self.generated} "
            f"generated, {self.failed} failed{too_long}; {self.completion_tokens} tokens in "
            f"{self.seconds:.1f} s ({self.tokens_per_s:.1f} tokens/s)"
        )


# A completion to critique, as an answer to its prompt.
Item = tuple[Sequence[Message], str]


def pair_items(pairs: Iterable[PreferencePair]) -> list[Item]:
    """One item per completion of each pair (chosen and rejected separately, never a pair)."""
    return [(p.prompt, c) for p in pairs for c in (p.chosen, p.rejected)]


def requests_for(pairs: Sequence[PreferencePair], config: CriticConfig) -> list[CritiqueRequest]:
    """One request per distinct completion (chosen and rejected separately, never a pair)."""
    return requests_for_completions(pair_items(pairs), config)


def requests_for_completions(
    items: Iterable[tuple[Sequence[Message], str]], config: CriticConfig
) -> list[CritiqueRequest]:
    """One request per distinct (prompt, completion), in first-seen order."""
    unique: dict[str, CritiqueRequest] = {}
    for prompt, completion in items:
        key = config.key(prompt, completion)
        if key not in unique:
            unique[key] = CritiqueRequest(key, tuple(prompt), completion)
    return list(unique.values())


def missing(
    requests: Sequence[CritiqueRequest], cache: CritiqueCache, max_model_len: Optional[int] = None
) -> list[CritiqueRequest]:
    """Requests to generate: those without a successful critique in the cache. Failed ones are
    tried again, except a prompt that did not fit the critic's context: the same critic would
    fail it again (after paying for its start), so it waits for a ``max_model_len`` above its
    length. Such a failure stays in the cache, so its pair is still dropped and counted."""
    return _plan(requests, cache, max_model_len)[0]


def _plan(
    requests: Sequence[CritiqueRequest], cache: CritiqueCache, max_model_len: Optional[int]
) -> tuple[list[CritiqueRequest], int]:
    """(requests to generate, how many are left failed as too long for the critic's context)."""
    stored = cache.get_many(r.key for r in requests)
    todo, too_long = [], 0
    for r in requests:
        row = stored.get(r.key)
        if row is None or _retry(row, max_model_len):
            todo.append(r)
        elif row.status != "ok":
            too_long += 1
    return todo, too_long


def _retry(row: CritiqueRow, max_model_len: Optional[int]) -> bool:
    if row.status == "ok":
        return not usable(row, max_model_len)
    if row.too_long:
        return max_model_len is not None and max_model_len > row.prompt_tokens
    return True


def usable(row: CritiqueRow, max_model_len: Optional[int]) -> bool:
    """Whether a stored critique is what a critic with context ``max_model_len`` writes.

    The context length is not in the key (raising it must keep every critique it does not
    change), but it can cut a generation that reaches the context's end. A critique that reached
    it (``prompt + completion == context``) holds only under that same context; one that ended
    before it holds under any context it fits in. ``None`` (the model's own length, fixed by the
    model's fingerprint) keeps what it wrote, except a cut critique, which is written again."""
    if row.status != "ok" or not row.context:
        return row.status == "ok"
    used = row.prompt_tokens + row.completion_tokens
    if used >= row.context:  # cut by the context
        return max_model_len == row.context
    return max_model_len is None or used <= max_model_len


def fill_cache(
    requests: Sequence[CritiqueRequest],
    config: CriticConfig,
    cache: CritiqueCache,
    backend_factory: Callable[[CriticConfig], CriticBackend] = build_backend,
    progress: bool = True,
) -> CritiqueSummary:
    """Generate every missing critique, one committed batch at a time.

    The order is deterministic (by size, then key), so a rerun after a kill continues with the
    same batches. The backend is only built when something is missing: a fully cached pass loads
    no model.
    """
    todo, too_long = _plan(requests, cache, config.engine.max_model_len)
    summary = CritiqueSummary(requested=len(requests), cached=len(requests) - len(todo) - too_long,
                              too_long=too_long)
    if not todo:
        return summary
    todo.sort(key=lambda r: (r.size, r.key))
    with sigterm_raises_systemexit():  # SIGTERM runs the `finally` below: the engine shuts down
        return _generate(todo, config, cache, backend_factory, summary, progress)


def _generate(
    todo: list[CritiqueRequest],
    config: CriticConfig,
    cache: CritiqueCache,
    backend_factory: Callable[[CriticConfig], CriticBackend],
    summary: CritiqueSummary,
    progress: bool,
) -> CritiqueSummary:
    bar = tqdm(total=len(todo), desc="critiques", unit="critique", disable=not progress,
               file=console.progress_stream())
    commit = Committer(config, cache, summary, bar)
    try:
        if config.ray.enabled:
            from lightning_critrm.critique.ray_dispatch import generate_on_ray

            generate_on_ray(todo, config, commit)
            return summary
        backend = backend_factory(config)
        try:
            for start in range(0, len(todo), config.cache.batch_size):
                batch = todo[start : start + config.cache.batch_size]
                began = time.perf_counter()
                outputs = backend.generate([config.prompt.render(r.prompt, r.completion) for r in batch])
                commit(batch, outputs, time.perf_counter() - began)
        finally:
            backend.close()
    finally:
        bar.close()
    return summary


class Committer:
    """Stores generations in the cache as one transaction per batch, and counts them."""

    def __init__(self, config: CriticConfig, cache: CritiqueCache, summary: CritiqueSummary, bar):
        self.critic, self.cache, self.summary, self.bar = config.identity_json(), cache, summary, bar

    def __call__(self, batch: Sequence[CritiqueRequest], outputs: Sequence[Generation],
                 elapsed: float) -> None:
        rows = [
            CritiqueRow(
                key=r.key,
                status="ok" if g.text else "failed",
                critique=g.text,
                error=g.error,
                critic=self.critic,
                prompt_tokens=g.prompt_tokens,
                completion_tokens=g.completion_tokens,
                seconds=elapsed / len(batch),
                too_long=g.too_long,
                context=g.context,
            )
            for r, g in zip(batch, outputs)
        ]
        self.cache.put_batch(rows)
        summary = self.summary
        ok = sum(row.status == "ok" for row in rows)
        summary.generated += ok
        summary.failed += len(rows) - ok
        summary.prompt_tokens += sum(row.prompt_tokens for row in rows)
        summary.completion_tokens += sum(row.completion_tokens for row in rows)
        summary.seconds += elapsed
        self.bar.update(len(batch))
        self.bar.set_postfix(tokens_per_s=f"{summary.tokens_per_s:.1f}", failed=summary.failed)


def current(stored: dict[str, CritiqueRow], max_model_len: Optional[int]) -> dict[str, CritiqueRow]:
    """The stored rows that still hold under ``max_model_len`` (failed ones included)."""
    return {k: r for k, r in stored.items() if r.status != "ok" or usable(r, max_model_len)}


@dataclass(frozen=True)
class AttachResult:
    pairs: list[PreferencePair]
    dropped_failed: int
    missing: int


def attach_critiques(
    pairs: Sequence[PreferencePair], config: CriticConfig, cache: CritiqueCache
) -> AttachResult:
    """``pairs`` with both critiques read from the cache.

    A pair whose critique failed is dropped (and counted) rather than trained on without it;
    ``missing`` counts pairs whose critiques were never generated.
    """
    keys = [(config.key(p.prompt, p.chosen), config.key(p.prompt, p.rejected)) for p in pairs]
    stored = current(cache.get_many(k for pair in keys for k in pair), config.engine.max_model_len)
    out, failed, absent = [], 0, 0
    for pair, (kc, kr) in zip(pairs, keys):
        rc, rr = stored.get(kc), stored.get(kr)
        if rc is None or rr is None:
            absent += 1
        elif rc.status != "ok" or rr.status != "ok":
            failed += 1
        else:
            out.append(replace(pair, chosen_critique=rc.critique, rejected_critique=rr.critique))
    return AttachResult(out, failed, absent)
