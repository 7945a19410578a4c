"""``python -m lightning_critrm serve``: an exported reward model over HTTP, for RL loops.

One process: FastAPI on uvicorn, the model and the critic in two workers
(:class:`~lightning_critrm.reward.shared_calls.SharedCalls`). Concurrent requests share each forward
pass; a critic that overlaps calls (vLLM's async engine, an endpoint) takes each request's
completions as it arrives, generating them beside those already in flight, and one that does not (a
transformers model) generates everything queued in one call. A request whose critiques are all
cached goes straight to the forward pass, never behind a generation.

Endpoints: ``POST /get_reward`` (OpenRLHF's remote reward protocol), ``POST /rewards`` (items of
prompt and completion), ``GET /health``. SIGTERM (or Ctrl-C) stops accepting connections, answers
every request in flight, closes the critic (a vLLM engine and its processes) and exits.
"""

# No `from __future__ import annotations`: FastAPI reads the handlers' annotations (Request).
import asyncio
import socket
from collections.abc import Sequence
from contextlib import asynccontextmanager
from typing import Any, Optional

from lightning_critrm import console
from lightning_critrm.errors import InputError, MissingExtraError
from lightning_critrm.reward.exported import (
    ExportedRewardModel,
    Item,
    command_parser,
    prompt_groups,
    split_model_options,
)
from lightning_critrm.reward.function import refuse_column_critiques
from lightning_critrm.reward.requests import (
    Limits,
    RequestError,
    RewardRequest,
    openrlhf_request,
    parse_json,
    rewards_request,
)
from lightning_critrm.reward.shared_calls import SharedCalls
from lightning_critrm.signals import sigterm_raises_systemexit

Outcome = tuple[Optional[float], Optional[str]]  # (reward, error): one of the two is None
# Chunks a critic that overlaps calls generates at once; more wait and join the next call. Enough for
# every client of a busy RL loop to have its completions in the engine beside the others'.
CRITIC_CALLS = 32


class RewardService:
    """Rewards for concurrent requests, computed together.

    Each request is cut into chunks of ``chunk_items`` (a request of 10,000 completions is many
    forward passes, not one). A chunk's cached critiques are read at once; the missing ones go to
    the critic (up to ``CRITIC_CALLS`` chunks generating at once where the backend overlaps calls,
    otherwise everything queued in one call); then the chunk goes to the forward thread, which
    scores everything queued in one call (in length-sorted batches of the model's ``batch_size``).

    Args:
        model: The exported reward model.
        chunk_items: Items per chunk, and the most one critic or forward call takes.
    """

    def __init__(self, model: ExportedRewardModel, chunk_items: int = 512):
        self.model, self.chunk_items = model, chunk_items
        self.store = model.critique_store() if model.critiques_from == "generate" else None
        self.forwarding = SharedCalls("reward-forward", self._forward, chunk_items,
                                      start=lambda: model.net)
        self.critic = None
        if self.store is not None:
            self.critic = SharedCalls(
                "reward-critic", self._critique, chunk_items,
                context=lambda: self.store.backend_kept(start=True, concurrent=True),
                parallel=lambda backend: CRITIC_CALLS if backend.concurrent else 1)

    def wait_ready(self) -> None:
        """Block until the model is loaded and the critic started."""
        self.forwarding.wait_ready()
        if self.critic is not None:
            self.critic.wait_ready()

    def close(self) -> None:
        """Finish what is queued, then stop both threads (the critic's backend closes with its)."""
        if self.critic is not None:
            self.critic.close()
        self.forwarding.close()

    async def rewards(self, items: Sequence[Item], normalize: bool) -> list[Outcome]:
        chunks = [items[i : i + self.chunk_items] for i in range(0, len(items), self.chunk_items)]
        outcomes = [o for chunk in await asyncio.gather(*map(self._chunk, chunks)) for o in chunk]
        if not normalize:
            return outcomes
        normalized = self.model.normalized([reward for reward, _ in outcomes])
        return [(reward, error) for reward, (_, error) in zip(normalized, outcomes)]

    async def _chunk(self, items: Sequence[Item]) -> list[Outcome]:
        critiques: list[tuple[Optional[str], Optional[str]]] = [(None, None)] * len(items)
        if self.store is not None:
            critiques = await asyncio.to_thread(self.store.read, items)
            todo = [i for i, (critique, _) in enumerate(critiques) if critique is None]
            for i, written in zip(todo, await self.critic.call([items[i] for i in todo])):
                critiques[i] = written
        rewards = await self.forwarding.call([(item, c) for item, (c, _) in zip(items, critiques)])
        return [(reward, None if reward is not None else f"no critique: {error or 'its generation failed'}")
                for reward, (_, error) in zip(rewards, critiques)]

    def _critique(self, items: list[Item]) -> list[tuple[Optional[str], Optional[str]]]:
        self.store.fill(items, require_cached=False, progress=False)
        return self.store.read(items)

    def _forward(self, entries: list[tuple[Item, Optional[str]]]) -> list[Optional[float]]:
        items = [item for item, _ in entries]
        sequences = self.model.encode(items, [c for _, c in entries])
        return self.model.forward(sequences, groups=prompt_groups(items))


def build_app(service: RewardService, limits: Limits, normalize: bool = False,
              strip: Sequence[str] = ()):
    """The FastAPI application of :class:`RewardService` (``service`` closed at shutdown)."""
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    @asynccontextmanager
    async def lifespan(app):
        yield
        await asyncio.to_thread(service.close)  # after uvicorn has answered every request in flight

    app = FastAPI(title="lightning_critrm reward server", lifespan=lifespan)
    model = service.model

    @app.exception_handler(RequestError)
    async def bad_request(request: Request, err: RequestError):
        return JSONResponse({"error": str(err), "field": err.field}, status_code=err.status)

    async def outcomes(parsed: RewardRequest) -> list[Outcome]:
        wanted = normalize if parsed.normalize is None else parsed.normalize
        try:
            model.check_normalize(wanted)
        except InputError as err:
            raise RequestError(422, "normalize", str(err)) from None
        return await service.rewards(parsed.items, wanted)

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": str(model.folder), "critiques": model.critiques_from,
                "critic": model.recipe.get("critic", {}).get("model") if service.store else None,
                "normalize": normalize}

    @app.post("/rewards")
    async def rewards(request: Request):
        """``{"items": [{"prompt", "completion"}], "normalize"?}`` -> ``{"rewards", "errors"}``."""
        answers = await outcomes(rewards_request(parse_json(await request.body()), limits))
        return {"rewards": [r for r, _ in answers], "errors": [e for _, e in answers]}

    @app.post("/get_reward")
    async def get_reward(request: Request):
        """OpenRLHF: ``{"query", "prompts", "labels"}`` -> ``{"rewards", "scores", "extra_logs"}``."""
        answers = await outcomes(openrlhf_request(parse_json(await request.body()), limits, strip))
        values = [r for r, _ in answers]
        failed = [0.0 if r is not None else 1.0 for r in values]
        return {"rewards": values, "scores": values, "errors": [e for _, e in answers],
                "extra_logs": {"critique_failed": failed}}

    return app


def serve(
    reward_model: ExportedRewardModel,
    host: str = "127.0.0.1",
    port: int = 8000,
    normalize: bool = False,
    chunk_items: int = 512,
    max_items: int = 100_000,
    max_text_chars: int = 100_000,
    strip: Optional[list[str]] = None,
    drain_timeout_s: float = 600.0,
) -> None:
    """Serve rewards from a reward model written by ``export``, over HTTP, for RL loops.

    ``POST /rewards`` takes ``{"items": [{"prompt": ..., "completion": ...}], "normalize": false}``
    (a prompt is a string or chat messages; a completion a string or messages ending in the
    assistant's) and answers ``{"rewards": [...], "errors": [...]}``: a reward is ``null`` where the
    item's critique failed, with the error beside it. ``POST /get_reward`` speaks OpenRLHF's remote
    reward protocol (``--remote_rm_url http://HOST:PORT/get_reward``). ``GET /health``. A bad
    request is answered 400, 413 or 422 with the field and item it concerns.

    Args:
        reward_model: The exported model (``--model`` and its options).
        host: Interface to listen on (``0.0.0.0`` for every one).
        port: Port to listen on (0: any free port, printed at start).
        normalize: Answer ``(reward - mean) / std`` with the validation statistics the export
            stored, unless a request says otherwise (``"normalize": false``).
        chunk_items: Items a request is cut into, and the most one critic or forward call takes
            across requests.
        max_items: Most items one request may hold (413 beyond).
        max_text_chars: Most characters of one prompt or completion (413 beyond); texts over the
            model's maximum length are truncated as in training and ``score``.
        strip: Strings removed from the end of each OpenRLHF response, e.g. the policy's
            end-of-sequence token (default: this model's EOS and pad tokens, as OpenRLHF's own
            server does).
        drain_timeout_s: On SIGTERM, how long requests in flight may take to finish.
    """
    try:
        import fastapi  # noqa: F401  (build_app's)
        import uvicorn
    except ImportError as err:
        raise MissingExtraError("the reward server needs FastAPI and uvicorn, an optional extra: "
                                "pip install 'lightning_critrm[serve]'") from err
    refuse_column_critiques(reward_model)
    reward_model.check_normalize(normalize)
    listener = _listen(host, port)
    if strip is None:
        tokenizer = reward_model.tokenizer
        strip = [t for t in {tokenizer.eos_token, tokenizer.pad_token} if t]
    # SIGTERM while the critic starts ends the command through its cleanup (the engine closed). Once
    # serving, uvicorn answers SIGTERM by draining, then raises it again: the same way out, status 143.
    with sigterm_raises_systemexit():
        service = RewardService(reward_model, chunk_items)
        try:
            print("loading the model" + (" and starting the critic" if service.store else ""), flush=True)
            service.wait_ready()
        except BaseException:
            service.close()
            listener.close()
            raise
        app = build_app(service, Limits(max_items, max_text_chars), normalize, strip)
        config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=drain_timeout_s)
        address = f"http://{host}:{listener.getsockname()[1]}"
        print(f"serving {reward_model.folder} on {address}: POST /rewards, POST /get_reward (OpenRLHF), "
              "GET /health; Ctrl-C or SIGTERM stops it after the requests in flight", flush=True)
        uvicorn.Server(config).run(sockets=[listener])


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as err:
        listener.close()
        raise InputError(f"--host {host} --port {port}: cannot listen there ({err.strerror}); "
                         "choose another port, or 0 for any free one") from None
    listener.listen(2048)
    return listener


def serve_parser():
    """The ``serve`` options: the exported model's, then :func:`serve`'s."""
    return command_parser(serve)


def run_serve_command(options: dict[str, Any]) -> None:
    console.show_package_logs()
    model, values = split_model_options(options)
    serve(ExportedRewardModel(**model), **values)
