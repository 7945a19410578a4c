"""An export's rewards served by LitServe, for ``serve_load.py --front litserve-*`` to measure against
``lightning_critrm serve`` (FastAPI on uvicorn). Not a supported server: no 4xx field names, no drain.

    python benchmarks/litserve_reward_server.py --model DIR --port N --mode batched|async

``batched`` is LitServe's own way: its loop gathers requests (``--max_batch_size``, ``--batch_timeout``)
and one ``predict`` generates the batch's missing critiques in one offline vLLM call, then scores the
batch in one forward pass; the next batch waits for it. ``async`` keeps LitServe's front end and
worker process but awaits the engine ``serve`` runs (``RewardService``: the async vLLM critic and
shared forward passes), so requests overlap as they do there. ``POST /rewards`` takes and answers
what ``serve``'s does (``{"items": [...]}`` -> ``{"rewards", "errors"}``). Needs ``pip install
litserve`` (no extra of this package brings it: only this measurement uses it).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import litserve as ls  # noqa: E402
import litserve.server as ls_server  # noqa: E402

from lightning_critrm.reward import ExportedRewardModel  # noqa: E402
from lightning_critrm.reward.requests import Limits, rewards_request  # noqa: E402

LIMITS = Limits(max_items=100_000, max_text_chars=1_000_000)


class BatchedRewards(ls.LitAPI):
    """LitServe's dynamic batching: one critic call and one forward pass per gathered batch."""

    def __init__(self, model: str, **kwargs):
        super().__init__(api_path="/rewards", **kwargs)
        self.folder = model

    def setup(self, device):
        self.model = ExportedRewardModel(self.folder)
        self.store = self.model.critique_store()
        self.kept = contextlib.ExitStack()
        self.kept.enter_context(self.store.backend_kept(start=True))  # the critic lives with the worker
        self.model.net

    def decode_request(self, request):
        return rewards_request(request, LIMITS).items

    def batch(self, inputs):
        return inputs  # a list of requests' item lists, kept apart for unbatch

    def predict(self, requests):
        items = [item for request in requests for item in request]
        self.store.fill(items, require_cached=False, progress=False)
        critiques = self.store.read(items)
        rewards = iter(self.model.forward(self.model.encode(items, [c for c, _ in critiques])))
        errors = iter(error for _, error in critiques)
        return [[(next(rewards), next(errors)) for _ in request] for request in requests]

    def unbatch(self, output):
        return output

    def encode_response(self, outcomes):
        return {"rewards": [r for r, _ in outcomes], "errors": [e for _, e in outcomes]}


class AsyncRewards(ls.LitAPI):
    """LitServe's front end and worker around ``serve``'s engine (``RewardService``)."""

    def __init__(self, model: str):
        super().__init__(api_path="/rewards", enable_async=True)
        self.folder = model

    def setup(self, device):
        from lightning_critrm.reward.server import RewardService

        self.service = RewardService(ExportedRewardModel(self.folder))
        self.service.wait_ready()

    async def decode_request(self, request):
        return rewards_request(request, LIMITS).items

    async def predict(self, items):
        return await self.service.rewards(items, normalize=False)

    async def encode_response(self, outcomes):
        return {"rewards": [r for r, _ in outcomes], "errors": [e for _, e in outcomes]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", choices=("batched", "async"), required=True)
    parser.add_argument("--max_batch_size", type=int, default=16)
    parser.add_argument("--batch_timeout", type=float, default=0.05)
    args = parser.parse_args()
    if args.mode == "batched":
        api = BatchedRewards(args.model, max_batch_size=args.max_batch_size, batch_timeout=args.batch_timeout)
    else:
        api = AsyncRewards(args.model)
    # LitServe 0.2.19 turns its MCP endpoint on when `mcp` is installed (vLLM brings it) but imports
    # it only with `fastmcp`, failing at start without it; this server offers no MCP tools anyway.
    ls_server._MCP_AVAILABLE = False
    # One worker: the model and the critic fit once on the machine, as in `serve`.
    server = ls.LitServer(api, accelerator="auto", devices=1, workers_per_device=1, timeout=600)
    server.run(host="127.0.0.1", port=args.port, num_api_servers=1, generate_client_file=False)


if __name__ == "__main__":
    main()
