"""The reward function an RL trainer calls: TRL's ``GRPOTrainer(reward_funcs=[...])`` convention."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any, Optional

from lightning_critrm.errors import InputError
from lightning_critrm.records import Message
from lightning_critrm.reward.exported import ExportedRewardModel
from lightning_critrm.reward.requests import RequestError, read_completion, read_prompt


class RewardFunction:
    """Rewards of sampled completions from an exported reward model, critiques included.

    Called as TRL's GRPOTrainer calls ``reward_funcs``: ``reward(prompts, completions, **kwargs)``
    with one prompt per completion, each either a string or chat messages (a conversational
    dataset: the prompt a list of ``{"role", "content"}``, the completion a list ending in the
    assistant's message). Returns one float per completion, ``None`` where its critique failed (TRL
    counts it as NaN and leaves it out). A model that reads generated critiques gets them from its
    recorded critic for each batch, generated together and cached, so a completion sampled twice
    is critiqued once. Extra keyword arguments (dataset columns, the trainer's state) are ignored.

    Args:
        model: Folder written by ``python -m lightning_critrm export``.
        normalize: ``(reward - mean) / std`` with the validation statistics the export stored.
        **options: As :class:`ExportedRewardModel` (batch size, cache folder, device, critic
            endpoint).
    """

    def __init__(self, model: str, normalize: bool = False, **options: Any):
        self.model = ExportedRewardModel(model, **options)
        self.normalize = normalize
        self.__name__ = "critique_reward"  # TRL names the reward's logged columns after it
        refuse_column_critiques(self.model)

    @classmethod
    def from_pretrained(cls, model: str, **kwargs: Any) -> "RewardFunction":
        return cls(model, **kwargs)

    def __call__(self, prompts: Sequence[str | Sequence[Message]],
                 completions: Sequence[str | Sequence[Message]], **kwargs: Any) -> list[Optional[float]]:
        if len(prompts) != len(completions):
            raise InputError(f"{len(prompts)} prompts for {len(completions)} completions: give one prompt "
                             "per completion")
        try:
            items = [(read_prompt(p, f"prompts[{k}]"), read_completion(c, f"completions[{k}]"))
                     for k, (p, c) in enumerate(zip(prompts, completions))]
        except RequestError as err:
            raise InputError(str(err)) from None
        return self.model.rewards(items, normalize=self.normalize, progress=False)


class RemoteRewardFunction:
    """The same reward function, answered by a reward server (``python -m lightning_critrm serve``)
    over HTTP: the policy's trainer needs neither the reward model nor its critic in its process.

    Args:
        url: The server, e.g. ``http://127.0.0.1:8000``.
        normalize: Ask for normalized rewards (default: the server's setting).
        timeout_s: How long one call may wait for its rewards (critiques included).
    """

    def __init__(self, url: str, normalize: Optional[bool] = None, timeout_s: float = 600.0):
        self.url = url.rstrip("/") + "/rewards"
        self.normalize, self.timeout_s = normalize, timeout_s
        self.__name__ = "critique_reward"

    def __call__(self, prompts: Sequence[str | Sequence[Message]],
                 completions: Sequence[str | Sequence[Message]], **kwargs: Any) -> list[Optional[float]]:
        body = {"items": [{"prompt": p, "completion": c} for p, c in zip(prompts, completions, strict=True)]}
        if self.normalize is not None:
            body["normalize"] = self.normalize
        request = urllib.request.Request(self.url, data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return json.loads(response.read())["rewards"]
        except urllib.error.HTTPError as err:  # a 4xx names the field: raise it as the server said it
            raise InputError(f"{self.url}: HTTP {err.code}: {err.read().decode(errors='replace')}") from None


def refuse_column_critiques(model: ExportedRewardModel) -> None:
    """Sampled completions have no critique columns: a model that read its critiques from data
    cannot reward them."""
    if model.critiques_from == "columns":
        raise InputError(f"{model.folder}: this model read critiques from data columns, which sampled "
                         "completions do not have; export one trained with generated critiques or none")
