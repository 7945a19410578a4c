"""The reward server under load, against offline scoring of the same items.

    VLLM_CPU_KVCACHE_SPACE=1 python benchmarks/serve_load.py --model runs/quickstart-rm

``--model`` is an export whose critic runs in-process (the quickstart's: `make quickstart`, then
`python -m lightning_critrm export --config conf/quickstart.yaml --ckpt_path last --out
runs/quickstart-rm --reward_stats false`). Nothing else may run on the machine.

For 1, 4 and 16 concurrent clients, each sending requests of 8 completions (one GRPO group) over
loopback: first completions never seen (the critic writes every critique), then the same ones
again (every critique cached). Throughput is completions per second over the level's wall time;
latency is per request. The baseline is offline scoring in one process
(``ExportedRewardModel.rewards``, what ``score`` runs) on the same items, the critic's engine
started beforehand as the server's is. Each level uses its own items, so none is cached by an
earlier one. Writes ``benchmarks/results/serve_load.json``.

``--front litserve-batched`` or ``litserve-async`` puts LitServe in front instead (see
``benchmarks/litserve_reward_server.py``) and writes ``serve_load_litserve_batched.json`` or
``serve_load_litserve_async.json``: what decided that ``serve`` is built on FastAPI.

``--precision bf16-mixed`` runs the server's and the offline forward pass under bf16 autocast and
writes ``serve_load_bf16_mixed.json``; ``--shared_prompt`` scores each request's group with its
prompt once, both sides, and adds ``_shared_prompt`` to the name.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
GROUP = 8  # completions per request


def items_for(level: int, requests: int) -> list[list[dict]]:
    """``requests`` requests of GROUP arithmetic answers, distinct for each ``level``."""
    out = []
    for r in range(requests):
        a, b = 100 * level + r, 7 + r
        prompt = f"What is {a} + {b}? Answer with the number."
        out.append([{"prompt": prompt, "completion": f"{a} + {b} = {a + b + k - GROUP // 2}."}
                    for k in range(GROUP)])
    return out


def post(url: str, body: dict) -> tuple[float, dict]:
    data = json.dumps(body).encode()
    request = urllib.request.Request(url + "/rewards", data=data, method="POST",
                                     headers={"Content-Type": "application/json"})
    began = time.perf_counter()
    with urllib.request.urlopen(request, timeout=600) as response:
        answer = json.loads(response.read())
    return time.perf_counter() - began, answer


def load(url: str, batches: list[list[dict]], clients: int) -> dict:
    began = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        answers = list(pool.map(lambda items: post(url, {"items": items}), batches))
    wall = time.perf_counter() - began
    latencies = sorted(seconds for seconds, _ in answers)
    completions = sum(len(b) for b in batches)
    failed = sum(r is None for _, answer in answers for r in answer["rewards"])
    return {"clients": clients, "requests": len(batches), "completions": completions, "failed": failed,
            "seconds": round(wall, 2), "completions_per_s": round(completions / wall, 1),
            "latency_p50_ms": round(1000 * statistics.median(latencies), 1),
            "latency_p99_ms": round(1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 1)}


def offline(model: str, cache: str, batches: list[list[dict]], precision: str, shared_prompt: bool) -> dict:
    """``ExportedRewardModel.rewards`` on every item at once, as ``score`` runs it."""
    os.environ["LIGHTNING_CRITRM_CACHE"] = cache
    from lightning_critrm.reward import ExportedRewardModel

    rm = ExportedRewardModel(model, precision=precision, shared_prompt=shared_prompt)
    items = [([{"role": "user", "content": i["prompt"]}], i["completion"]) for b in batches for i in b]
    store = rm.critique_store()
    figures = {}
    with store.backend_kept(start=True):  # the engine starts before the clock, as the server's
        rm.net
        for phase in ("uncached", "cached"):
            began = time.perf_counter()
            rm.rewards(items, progress=False)
            wall = time.perf_counter() - began
            figures[phase] = {"completions": len(items), "seconds": round(wall, 2),
                              "completions_per_s": round(len(items) / wall, 1)}
            print("offline", phase, figures[phase], flush=True)
    return figures


def serve(model: str, cache: str, front: str, precision: str, shared_prompt: bool):
    """Start the server (its own process group, ended whole by ``stop``); return it and its URL once
    it answers ``/health``."""
    with socket.socket() as probe:  # a free port: LitServe takes no port 0
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    if front == "serve":
        command = ["-m", "lightning_critrm", "serve", "--model", model, "--port", str(port),
                   "--precision", precision, "--shared_prompt", str(shared_prompt).lower()]
    else:
        command = [str(REPO / "benchmarks" / "litserve_reward_server.py"), "--model", model, "--port",
                   str(port), "--mode", front.removeprefix("litserve-")]
    env = {**os.environ, "LIGHTNING_CRITRM_CACHE": cache, "PYTHONPATH": str(REPO)}
    log = tempfile.TemporaryFile("w+")
    process = subprocess.Popen([sys.executable, *command], cwd=REPO, env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(url + "/health", timeout=5) as answer:
                if answer.status == 200:
                    return process, url
        except OSError:
            pass
        time.sleep(0.5)
    stop(process)
    log.seek(0)
    raise RuntimeError("the server did not start:\n" + log.read()[-3000:])


def stop(process) -> None:
    """SIGTERM to the server's whole group (LitServe's workers, vLLM's engine), SIGKILL if it lingers."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(120)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--requests", type=int, default=24, help="requests per level")
    parser.add_argument("--front", choices=("serve", "litserve-batched", "litserve-async"), default="serve",
                        help="what answers HTTP: `lightning_critrm serve` (FastAPI), or LitServe with its "
                             "own batching or around serve's engine (benchmarks/litserve_reward_server.py)")
    from lightning_critrm.reward.exported import PRECISIONS

    parser.add_argument("--precision", choices=PRECISIONS, default="32-true",
                        help="the forward pass's precision, server and offline alike (serve only)")
    parser.add_argument("--shared_prompt", action="store_true",
                        help="each request's completions with their prompt once, server and offline "
                             "(serve only)")
    args = parser.parse_args()
    if args.front != "serve" and (args.precision != "32-true" or args.shared_prompt):
        parser.error("--precision and --shared_prompt apply to --front serve")
    levels = (1, 4, 16)
    plans = {c: items_for(c, args.requests) for c in levels}
    rows = []
    with tempfile.TemporaryDirectory() as served_cache, tempfile.TemporaryDirectory() as offline_cache:
        began = time.perf_counter()
        process, url = serve(args.model, served_cache, args.front, args.precision, args.shared_prompt)
        start_s = time.perf_counter() - began
        try:
            post(url, {"items": items_for(99, 1)[0]})  # a first request off the clock
            for clients in levels:
                for phase in ("uncached", "cached"):
                    row = {"phase": phase, **load(url, plans[clients], clients)}
                    rows.append(row)
                    print(row, flush=True)
        finally:
            stop(process)
        baseline = offline(args.model, offline_cache, plans[16], args.precision, args.shared_prompt)
    from lightning_critrm.hardware import cpu_has_native_bf16

    names = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")]
    at_16 = {r["phase"]: r["completions_per_s"] for r in rows if r["clients"] == 16}
    recipe = json.loads((Path(args.model) / "config.json").read_text())["lightning_critrm"]
    result = {
        "cpu": f"{names[0] if names else '?'}, {os.cpu_count()} cores",
        "cpu_native_bf16": cpu_has_native_bf16(),
        "model": recipe["backbone"], "critic": recipe.get("critic", {}).get("model"),
        "critic_max_new_tokens": recipe.get("critic", {}).get("sampling", {}).get("max_new_tokens"),
        "front": args.front, "precision": args.precision, "shared_prompt": args.shared_prompt,
        "completions_per_request": GROUP,
        "server_start_s": round(start_s, 1),
        "server": rows, "offline": baseline,
        "ratio_16_clients_to_offline": {
            phase: round(at_16[phase] / baseline[phase]["completions_per_s"], 2) for phase in at_16},
    }
    suffix = "" if args.front == "serve" else "_" + args.front.replace("-", "_")
    suffix += "" if args.precision == "32-true" else "_" + args.precision.replace("-", "_")
    suffix += "_shared_prompt" if args.shared_prompt else ""
    out = REPO / "benchmarks" / "results" / f"serve_load{suffix}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["ratio_16_clients_to_offline"]), f"wrote {out}")


if __name__ == "__main__":
    main()
