"""Critique generation throughput: our vllm backend vs raw vLLM vs our transformers backend.

Run by hand (not a test); results go to a JSON file:

    VLLM_CPU_KVCACHE_SPACE=1 python benchmarks/critique_throughput.py --out
    benchmarks/results/critique_throughput.json

Same prompts for every contender: the first ``--n`` distinct completions of the shared MT-Bench
pairs, each rendered with the default critic instruction through SmolLM2-135M-Instruct's chat
template, ``--max-new-tokens`` new tokens, greedy. Raw vLLM is ``LLM.generate`` on the very engine
our backend built (same process, same weights, same token ids), so the difference is our layer:
rendering, batching, the SQLite cache. A fully cached pass over 10,000 synthetic rows is timed too.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MTBENCH = REPO.parent / "shared" / "data" / "critiques" / "mtbench_vicuna_gpt4_critique_pairs.jsonl"


def load_requests(n: int, config):
    from lightning_critrm.critique import requests_for
    from lightning_critrm.data.sources import read_pairs
    from lightning_critrm.records import ColumnMap

    pairs = read_pairs(str(MTBENCH), ColumnMap(), with_critiques=False).pairs
    requests, seen = [], set()
    for r in requests_for(pairs, config):
        if r.key not in seen:
            seen.add(r.key)
            requests.append(r)
        if len(requests) == n:
            break
    return requests


def timed_fill(requests, config, backend):
    """Our whole path (lookup, ordering, rendering, generation, commits), minus shutting the
    engine down, which fill_cache does at the end and which is not generation throughput."""
    from lightning_critrm.critique import CritiqueCache, fill_cache

    close, backend.close = backend.close, lambda: None
    with tempfile.TemporaryDirectory() as tmp, CritiqueCache(Path(tmp) / "c.sqlite") as cache:
        began = time.perf_counter()
        summary = fill_cache(requests, config, cache, backend_factory=lambda c: backend, progress=True)
        wall = time.perf_counter() - began
    close()
    return {
        "critiques": summary.generated + summary.failed,
        "failed": summary.failed,
        "completion_tokens": summary.completion_tokens,
        "wall_s": round(wall, 2),
        "tokens_per_s": round(summary.completion_tokens / wall, 2),
    }


def padding_share(lengths, batch_size, sort):
    order = sorted(lengths) if sort else list(lengths)
    pad = total = 0
    for i in range(0, len(order), batch_size):
        chunk = order[i : i + batch_size]
        pad += max(chunk) * len(chunk) - sum(chunk)
        total += max(chunk) * len(chunk)
    return round(pad / total, 4)


def bench_vllm(requests, args, prefix_caching: bool):
    import dataclasses

    from lightning_critrm.critique import CachePolicy, CriticConfig, Engine, Sampling
    from lightning_critrm.critique.backend import chat_prompt_ids
    from lightning_critrm.critique.vllm_backend import VLLMCritic

    config = CriticConfig(
        backend="vllm", model="smollm2-135m-instruct", dtype=args.vllm_dtype,
        sampling=Sampling(max_new_tokens=args.max_new_tokens), cache=CachePolicy(batch_size=len(requests)),
        engine=Engine(enable_prefix_caching=prefix_caching, max_model_len=4096),
    )
    began = time.perf_counter()
    backend = VLLMCritic(config)
    start_s = time.perf_counter() - began
    import vllm

    prompts = [{"prompt_token_ids": chat_prompt_ids(backend.tokenizer,
                                                    config.prompt.render(r.prompt, r.completion))}
               for r in requests]
    # warm-up
    backend.llm.generate(prompts[:4], vllm.SamplingParams(max_tokens=8, temperature=0), use_tqdm=False)
    sampling = vllm.SamplingParams(temperature=0.0, max_tokens=args.max_new_tokens, seed=0)
    began = time.perf_counter()
    outputs = backend.llm.generate(prompts, sampling, use_tqdm=True)
    raw_wall = time.perf_counter() - began
    raw_tokens = sum(len(o.outputs[0].token_ids) for o in outputs)
    raw = {"critiques": len(outputs), "completion_tokens": raw_tokens, "wall_s": round(raw_wall, 2),
           "tokens_per_s": round(raw_tokens / raw_wall, 2),
           "mean_prompt_tokens": round(sum(len(p["prompt_token_ids"]) for p in prompts) / len(prompts), 1)}
    ours = timed_fill(requests, dataclasses.replace(config), backend)
    return {"engine_start_s": round(start_s, 1), "dtype": args.vllm_dtype, "prefix_caching": prefix_caching,
            "raw_llm_generate": raw, "our_vllm_backend": ours,
            "ours_vs_raw": round(ours["tokens_per_s"] / raw["tokens_per_s"], 3)}


def bench_transformers(requests, args):
    from lightning_critrm.critique import CachePolicy, CriticConfig, Engine, Sampling
    from lightning_critrm.critique.backend import chat_prompt_ids
    from lightning_critrm.critique.transformers_backend import TransformersCritic

    config = CriticConfig(backend="transformers", model="smollm2-135m-instruct", dtype=args.hf_dtype,
                          sampling=Sampling(max_new_tokens=args.max_new_tokens),
                          cache=CachePolicy(batch_size=64),
                          engine=Engine(generation_batch_size=16))
    backend = TransformersCritic(config)
    lengths = [len(chat_prompt_ids(backend.tokenizer,
                                   config.prompt.render(r.prompt, r.completion))) for r in requests]
    result = timed_fill(requests, config, backend)
    result.update({"dtype": args.hf_dtype, "generation_batch_size": 16,
                   "prompt_padding_share_sorted": padding_share(lengths, 16, sort=True),
                   "prompt_padding_share_unsorted": padding_share(lengths, 16, sort=False)})
    return result


def bench_cached_pass(rows: int = 10_000):
    from lightning_critrm.critique import (
        CriticConfig,
        CritiqueCache,
        attach_critiques,
        fill_cache,
        requests_for,
    )
    from lightning_critrm.critique.cache import CritiqueRow
    from lightning_critrm.records import PreferencePair

    pairs = [PreferencePair(({"role": "user", "content": f"Question {i}. " * 40},), f"Answer {i}. " * 80,
                            f"Other answer {i}. " * 80) for i in range(rows // 2)]
    config = CriticConfig()
    with tempfile.TemporaryDirectory() as tmp, CritiqueCache(Path(tmp) / "c.sqlite") as cache:
        cache.put_batch([CritiqueRow(r.key, "ok", "A critique. " * 60, None, config.identity_json())
                         for r in requests_for(pairs, config)])
        began = time.perf_counter()
        summary = fill_cache(requests_for(pairs, config), config, cache, backend_factory=None, progress=False)
        critique_pass = time.perf_counter() - began
        began = time.perf_counter()
        attached = attach_critiques(pairs, config, cache)
        attach_s = time.perf_counter() - began
    assert summary.generated == 0 and len(attached.pairs) == len(pairs)
    return {"rows": rows, "critique_pass_s": round(critique_pass, 4),
            "critique_pass_per_s": round(rows / critique_pass), "attach_to_pairs_s": round(attach_s, 4),
            "attach_per_s": round(rows / attach_s)}


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--vllm-dtype", default="bfloat16")
    parser.add_argument("--hf-dtype", default="float32")
    parser.add_argument("--skip", nargs="*", default=[],
                        choices=["vllm", "vllm_no_prefix", "transformers", "cached"])
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "critique_throughput.json"))
    args = parser.parse_args()
    from lightning_critrm.critique import CriticConfig

    requests = load_requests(args.n, CriticConfig())
    results = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
               "n_critiques": len(requests), "max_new_tokens": args.max_new_tokens,
               "critic": "smollm2-135m-instruct"}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    def save():
        out.write_text(json.dumps(results, indent=2) + "\n")

    if "cached" not in args.skip:
        results["cached_pass"] = bench_cached_pass()
        save()
    if "vllm" not in args.skip:
        results["vllm"] = bench_vllm(requests, args, prefix_caching=True)
        save()
    if "vllm_no_prefix" not in args.skip:
        results["vllm_without_prefix_caching"] = bench_vllm(requests, args, prefix_caching=False)
        save()
    if "transformers" not in args.skip:
        results["transformers"] = bench_transformers(requests, args)
        if "vllm" in results:
            results["vllm_over_transformers"] = round(
                results["vllm"]["our_vllm_backend"]["tokens_per_s"] / results["transformers"]["tokens_per_s"],
                                                      2)
        save()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":  # vLLM spawns workers that re-import this module
    main()
