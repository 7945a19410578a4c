"""How a reward's (prompt, completion) items are read, from the reward server's request bodies and from
the reward function's arguments alike: anything else is a :class:`RequestError` that names the field
and item (the server answers it with a 4xx, the function raises it as an :class:`InputError`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

from lightning_critrm.records import Message
from lightning_critrm.reward.exported import Item


class RequestError(Exception):
    """A request the server cannot score: ``status`` 400 (not JSON), 413 (too large) or 422."""

    def __init__(self, status: int, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.status, self.field = status, field


@dataclass(frozen=True)
class Limits:
    max_items: int
    max_text_chars: int


@dataclass(frozen=True)
class RewardRequest:
    items: list[Item]
    normalize: Optional[bool]  # None: the server's default


def parse_json(body: bytes) -> dict:
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RequestError(400, "body", f"not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise RequestError(422, "body", f"expected a JSON object, got {_kind(data)}")
    return data


def rewards_request(data: dict, limits: Limits) -> RewardRequest:
    """``POST /rewards``: ``{"items": [{"prompt": str | messages, "completion": str | messages}],
    "normalize": bool?}``."""
    entries = _list(data, "items", limits)
    items = []
    for k, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise RequestError(422, f"items[{k}]", f"expected an object with 'prompt' and 'completion', "
                                                   f"got {_kind(entry)}")
        for name in ("prompt", "completion"):
            if name not in entry:
                raise RequestError(422, f"items[{k}].{name}", "missing")
        prompt = read_prompt(entry["prompt"], f"items[{k}].prompt", limits)
        items.append((prompt, read_completion(entry["completion"], f"items[{k}].completion", limits)))
    return RewardRequest(items, _normalize(data))


def openrlhf_request(data: dict, limits: Limits, strip: Sequence[str]) -> RewardRequest:
    """``POST /get_reward``, OpenRLHF's remote reward protocol: ``{"query": [prompt + response],
    "prompts": [prompt], "labels": [...]}``. Each response is its query after its prompt, with any
    of ``strip`` (end-of-sequence strings) removed from its end; ``labels`` are not used."""
    queries = _list(data, "query", limits)
    prompts = data.get("prompts")
    if prompts is None:
        raise RequestError(422, "prompts", "missing: this reward model reads each prompt apart from its "
                                           "response (OpenRLHF sends 'prompts' beside 'query')")
    if not isinstance(prompts, list) or len(prompts) != len(queries):
        raise RequestError(422, "prompts", f"expected a list of {len(queries)} strings, one per query")
    items = []
    for k, (query, prompt) in enumerate(zip(queries, prompts)):
        query = _text(query, f"query[{k}]", limits)
        prompt = _text(prompt, f"prompts[{k}]", limits)
        if not query.startswith(prompt):
            raise RequestError(422, f"query[{k}]", f"does not start with prompts[{k}]: give each query as "
                                                   "its prompt followed by the response")
        items.append(([{"role": "user", "content": prompt}], _strip_end(query[len(prompt):], strip)))
    return RewardRequest(items, _normalize(data))


def _strip_end(text: str, strip: Sequence[str]) -> str:
    text = text.rstrip()
    while ending := next((s for s in strip if s and text.endswith(s)), None):
        text = text[: -len(ending)].rstrip()
    return text


def _list(data: dict, field: str, limits: Limits) -> list:
    if field not in data:
        raise RequestError(422, field, "missing")
    value = data[field]
    if not isinstance(value, list):
        raise RequestError(422, field, f"expected a list, got {_kind(value)}")
    if not value:
        raise RequestError(422, field, "empty: give at least one item")
    if len(value) > limits.max_items:
        raise RequestError(413, field, f"{len(value)} items, over the server's --max_items "
                                       f"{limits.max_items}: send them in several requests")
    return value


def _normalize(data: dict) -> Optional[bool]:
    value = data.get("normalize")
    if value is not None and not isinstance(value, bool):
        raise RequestError(422, "normalize", f"expected true or false, got {_kind(value)}")
    return value


def _text(value: Any, field: str, limits: Optional[Limits]) -> str:
    if not isinstance(value, str):
        raise RequestError(422, field, f"expected a string, got {_kind(value)}")
    if limits is not None and len(value) > limits.max_text_chars:
        raise RequestError(413, field, f"{len(value)} characters, over the server's --max_text_chars "
                                       f"{limits.max_text_chars}")
    return value


def read_prompt(value: Any, field: str, limits: Optional[Limits] = None) -> list[Message]:
    """A prompt as chat messages: a string is the user's message; ``limits`` None: no length bound."""
    if isinstance(value, str):
        return [{"role": "user", "content": _text(value, field, limits)}]
    if not isinstance(value, list) or not value:
        raise RequestError(422, field, f"expected a string or chat messages, got {_kind(value)}")
    return [_message(m, f"{field}[{j}]", limits) for j, m in enumerate(value)]


def read_completion(value: Any, field: str, limits: Optional[Limits] = None) -> str:
    """A completion's text: a string, or chat messages ending in the assistant's (TRL's
    conversational completions)."""
    if isinstance(value, str):
        return _text(value, field, limits)
    if not isinstance(value, list) or not value:
        raise RequestError(422, field, f"expected a string or chat messages, got {_kind(value)}")
    last = _message(value[-1], f"{field}[{len(value) - 1}]", limits)
    if last["role"] != "assistant":
        raise RequestError(422, f"{field}[{len(value) - 1}].role", "the last message must be the assistant's")
    return last["content"]


def _message(value: Any, field: str, limits: Optional[Limits]) -> Message:
    if not isinstance(value, dict):
        raise RequestError(422, field, f"expected a message {{'role', 'content'}}, got {_kind(value)}")
    if not isinstance(value.get("role"), str):
        raise RequestError(422, f"{field}.role", "expected a string")
    return {"role": value["role"], "content": _text(value.get("content"), f"{field}.content", limits)}


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__)
