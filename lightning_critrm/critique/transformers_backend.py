"""Batched generation with ``transformers`` (no extra install; slower than vLLM)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

from lightning_critrm.backbones import pad_token_id, resolve_backbone
from lightning_critrm.critique.backend import (
    CriticBackend,
    Generation,
    finished,
    request_ids,
    stop_strings,
    written_critique,
)
from lightning_critrm.critique.config import CriticConfig
from lightning_critrm.records import Message


def _torch_dtype(name: str):
    import torch

    return "auto" if name == "auto" else getattr(torch, name)


class TransformersCritic(CriticBackend):
    """Batched ``model.generate`` with left padding, for machines without vLLM."""

    def __init__(self, config: CriticConfig):
        super().__init__(config)
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = resolve_backbone(config.model)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForCausalLM.from_pretrained(path,
                                                          dtype=_torch_dtype(config.effective_dtype)).eval()
        tok = self.tokenizer
        self.pad_id = pad_token_id(tok)
        stop = self.model.generation_config.eos_token_id
        self.stop_ids = (set(stop if isinstance(stop, list) else [stop]) | {tok.eos_token_id}) - {None}

    def generate(self, requests: Sequence[Sequence[Message]]) -> list[Generation]:
        import torch

        cfg = self.config
        ids = [request_ids(cfg, self.tokenizer, m) for m in requests]
        # Sorted by length so each generate call pads little; results go back in request order.
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        results: list[Optional[Generation]] = [None] * len(ids)
        for start in range(0, len(order), cfg.engine.generation_batch_size):
            chunk = order[start : start + cfg.engine.generation_batch_size]
            width = max(len(ids[i]) for i in chunk)
            input_ids = torch.full((len(chunk), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, i in enumerate(chunk):
                input_ids[row, width - len(ids[i]) :] = torch.tensor(ids[i])
                mask[row, width - len(ids[i]) :] = 1
            sampling = {"do_sample": False}
            if cfg.sampling.temperature > 0:
                torch.manual_seed(cfg.sampling.seed)
                sampling = {"do_sample": True, "temperature": cfg.sampling.temperature,
                            "top_p": cfg.sampling.top_p}
            with torch.no_grad():
                out = self.model.generate(
                    input_ids=input_ids, attention_mask=mask, max_new_tokens=cfg.sampling.max_new_tokens,
                    pad_token_id=self.pad_id, stop_strings=stop_strings(cfg) or None,
                    tokenizer=self.tokenizer, **sampling,
                )
            for row, i in enumerate(chunk):
                new = out[row, width:].tolist()
                end = next((k for k, t in enumerate(new) if t in self.stop_ids), len(new))
                text = self.tokenizer.decode(new[:end], skip_special_tokens=True)
                results[i] = finished(written_critique(cfg, text), len(ids[i]), end)
        return results  # type: ignore[return-value]
