"""Critiques through Ray Data (``critic.ray``) against the direct ``openai`` backend, same requests.

Run by hand (not a test); the result goes to a JSON file:

    VLLM_CPU_KVCACHE_SPACE=1 python benchmarks/ray_dispatch.py --out benchmarks/results/ray_dispatch.json

One vLLM OpenAI-compatible server (SmolLM2-135M-Instruct, the machine's fastest dtype, eager) serves
both paths: the first ``--n`` distinct completions of the shared MT-Bench pairs, rendered with the
default critic instruction, ``--max-new-tokens`` each, greedy, at most ``--concurrency`` requests in
flight from either path (the backend's ``endpoint.max_concurrency``; Ray's workers,
``ray.concurrency``, each sending its batch's requests in turn). Each pass fills an empty cache; the
passes alternate, ``--repeats`` each (the first direct pass also warms the server's prefix cache). A
Ray pass includes starting and stopping the local cluster that a command without ``ray.address``
starts. The critiques are compared too: between the paths, and between repeats of each.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from critique_throughput import REPO, load_requests

SERVED = "critic"


def start_server(port: int, dtype: str, log_path: Path) -> subprocess.Popen:
    from lightning_critrm.backbones import resolve_backbone

    log = open(log_path, "w")
    # `vllm serve` fails with vllm-cpu (it looks up a distribution named vllm): start the module.
    server = subprocess.Popen(
        [sys.executable, "-m", "vllm.entrypoints.openai.api_server",
         "--model", resolve_backbone("smollm2-135m-instruct"), "--served-model-name", SERVED,
         "--host", "127.0.0.1", "--port", str(port), "--enforce-eager", "--dtype", dtype,
         "--max-model-len", "2048"],
        stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 600
    while True:
        if server.poll() is not None:
            raise SystemExit(f"the vLLM server stopped; see {log_path}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2)
            return server
        except OSError:
            if time.time() > deadline:
                server.kill()
                raise SystemExit(f"the vLLM server did not start in 600 s; see {log_path}")
            time.sleep(1)


def one_pass(requests, config) -> tuple[dict, list[tuple]]:
    from lightning_critrm.critique import CritiqueCache, fill_cache

    with tempfile.TemporaryDirectory() as tmp, CritiqueCache(Path(tmp) / "c.sqlite") as cache:
        began = time.perf_counter()
        summary = fill_cache(requests, config, cache, progress=False)
        wall = time.perf_counter() - began
        rows = [(key, status, critique) for key, status, critique, _, _ in cache.rows()]
    return {"wall_s": round(wall, 2), "generated": summary.generated, "failed": summary.failed,
            "completion_tokens": summary.completion_tokens,
            "critiques_per_s": round(summary.generated / wall, 3)}, rows


def agreement(a: list[tuple], b: list[tuple]) -> float:
    return round(sum(x == y for x, y in zip(a, b)) / len(a), 3)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=8, help="Ray Data batch (ray.batch_size)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--port", type=int, default=8531)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "ray_dispatch.json"))
    args = parser.parse_args()
    import ray

    from lightning_critrm.critique import CriticConfig, Endpoint, Sampling
    from lightning_critrm.critique.config import RayDispatch
    from lightning_critrm.hardware import cpu_has_native_bf16, fastest_dtype, local_device

    dtype = fastest_dtype(local_device())
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    server = start_server(args.port, dtype, Path(tempfile.gettempdir()) / "ray_dispatch_server.log")
    start_s = time.perf_counter() - began
    try:
        def config(on_ray: bool) -> CriticConfig:
            return CriticConfig(
                backend="openai", model=SERVED, sampling=Sampling(max_new_tokens=args.max_new_tokens),
                endpoint=Endpoint(base_url=f"http://127.0.0.1:{args.port}/v1",
                                  max_concurrency=args.concurrency),
                ray=RayDispatch(enabled=on_ray, concurrency=args.concurrency, batch_size=args.batch_size))

        requests = load_requests(args.n, config(False))
        passes, written = {"direct": [], "ray": []}, {"direct": [], "ray": []}
        for _ in range(args.repeats):
            for name in ("direct", "ray"):
                result, rows = one_pass(requests, config(name == "ray"))
                passes[name].append(result)
                written[name].append(rows)
                print(name, result, flush=True)
        # Ray's own start and stop on this machine, apart from any request.
        began = time.perf_counter()
        ray.init(include_dashboard=False, logging_level="WARNING")
        ray.shutdown()
        ray_start_stop_s = time.perf_counter() - began
    finally:
        server.terminate()
        server.wait(timeout=60)

    names = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")]
    best = {name: min(p["wall_s"] for p in runs) for name, runs in passes.items()}
    result = {
        "cpu": f"{names[0] if names else '?'}, {os.cpu_count()} cores",
        "cpu_native_bf16": cpu_has_native_bf16(),
        "platform": platform.platform(), "ray": ray.__version__, "critic": "smollm2-135m-instruct",
        "dtype": dtype, "n_requests": len(requests), "max_new_tokens": args.max_new_tokens,
        "concurrency": args.concurrency, "ray_batch_size": args.batch_size,
        "server_start_s": round(start_s, 1),
        "passes": passes, "best_wall_s": best,
        "ray_overhead_s": round(best["ray"] - best["direct"], 2),
        "ray_over_direct_wall": round(best["ray"] / best["direct"], 3),
        "local_ray_start_stop_s": round(ray_start_stop_s, 2),
        # Share of requests with the same status and critique in two passes. Greedy decoding is
        # deterministic only for a fixed batch composition: in bf16 a request batched with others
        # can tip an argmax, so the direct path's own repeat is the yardstick.
        "same_critique_share": {
            "direct_vs_direct": agreement(written["direct"][0], written["direct"][-1]),
            "ray_vs_ray": agreement(written["ray"][0], written["ray"][-1]),
            "direct_vs_ray": agreement(written["direct"][-1], written["ray"][-1]),
        },
    }
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
