"""Run as a script (vLLM spawns processes): vLLM's offline and async critics on the same requests.

``python -m tests.critique.vllm_async_probe MODEL OUT.json`` writes what each generated, when a short
call made while a long call ran (from another thread) started and ended, and how long the same short
call takes alone.
"""

import json
import sys
import threading
import time


def main(model: str, out: str) -> None:
    from lightning_critrm.critique import CriticConfig
    from lightning_critrm.critique.config import Engine, Sampling
    from lightning_critrm.critique.vllm_backend import AsyncVLLMCritic, VLLMCritic

    config = CriticConfig(backend="vllm", model=model, dtype="float32", sampling=Sampling(max_new_tokens=256),
                          engine=Engine(enforce_eager=True, max_model_len=512))
    requests = [[{"role": "user", "content": f"Review answer {i}: it is {i * 7}."}] for i in range(24)]
    requests.append([{"role": "user", "content": "long " * 600}])  # over the context: fails alone
    offline = VLLMCritic(config)
    expected = offline.generate(requests)
    offline.close()

    # The short call: one request the offline engine generated to the full length (so, had it waited
    # for the long call, it would have ended a whole generation after it); the long call: the rest.
    short = next(i for i, g in enumerate(expected) if g.completion_tokens == config.sampling.max_new_tokens)
    rest = [i for i in range(len(requests)) if i != short]
    critic = AsyncVLLMCritic(config)
    critic.generate(requests[:1])  # warm
    times: dict[str, float] = {}
    results: dict[str, list] = {}

    def call(name, batch):
        times[name + "_start"] = time.perf_counter()
        results[name] = critic.generate(batch)
        times[name + "_end"] = time.perf_counter()

    long = threading.Thread(target=call, args=("long", [requests[i] for i in rest]))
    long.start()
    while critic.engine.get_num_unfinished_requests() == 0:  # the long call is generating
        time.sleep(0.001)
    time.sleep(0.1)
    call("short", [requests[short]])
    long.join()
    call("alone", [requests[short]])  # the same request with the engine to itself
    critic.close()
    together = dict(zip(rest, results["long"])) | {short: results["short"][0]}
    together = [together[i] for i in range(len(requests))]

    def record(generations):
        return [[g.text, g.error, g.completion_tokens, g.too_long] for g in generations]

    with open(out, "w") as f:
        json.dump({"offline": record(expected), "async": record(together), "times": times, "short": short,
                   "max_new_tokens": config.sampling.max_new_tokens}, f)


if __name__ == "__main__":
    main(*sys.argv[1:])
