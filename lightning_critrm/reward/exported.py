"""An exported reward model that scores new items exactly as it was trained to read them.

Reads only the folder ``export`` wrote: its ``config.json`` holds the recipe (``lightning_critrm``:
critique mode and format, maximum length, the critic, reward statistics). A model that read
generated critiques gets them from the recorded critic (same template, sampling and model),
missing ones generated and cached in the same SQLite cache as training uses. A model that writes
its own critiques is its own critic: the folder continues each scored text to its critique
(``prompting: continuation``), cached under the folder's fingerprint, then scores it.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Literal, Optional, get_args

import torch
from tqdm.auto import tqdm

from lightning_critrm import console
from lightning_critrm.backbones import cache_root
from lightning_critrm.critique import CriticConfig
from lightning_critrm.critique.store import CritiqueStore
from lightning_critrm.data.completion_encoder import CompletionEncoder
from lightning_critrm.data.formatting import SequenceFormatter
from lightning_critrm.errors import InputError, MissingInputError
from lightning_critrm.hardware import fastest_dtype
from lightning_critrm.layout import Layout, SequenceBatches
from lightning_critrm.locations import writable_folder
from lightning_critrm.prompts import CritiqueFormat
from lightning_critrm.records import Message

log = logging.getLogger(__name__)

Item = tuple[Sequence[Message], str]  # (prompt messages, completion)
Precision = Literal["32-true", "bf16-mixed"]  # Lightning's names for the same two modes
PRECISIONS: tuple[str, ...] = get_args(Precision)


class ExportedRewardModel:
    """Rewards of (prompt, completion) items from a folder written by ``export``.

    The commands that score an export (``score``, ``serve``, ``evaluate --model``) take these as
    their options (:func:`command_parser`).

    Args:
        model: Folder written by ``python -m lightning_critrm export``.
        batch_size: Sequences per forward pass.
        cache_dir: Where generated critiques are cached (default: ``$LIGHTNING_CRITRM_CACHE`` or
            ``~/.cache/lightning_critrm``, as in training).
        device: ``auto`` (a GPU where there is one), ``cpu`` or ``cuda``.
        critic_base_url: Where the recorded critic is served, when it is an endpoint (``openai``
            backend): the export records what the critic is, never where it ran.
        critic_api_key_env: Environment variable holding that endpoint's API key.
        critic_backend: Run a local critic (the recorded one, or the model itself where it writes
            its own critiques) with this backend instead of the recorded one (``auto``: vLLM where
            it is installed).
        precision: ``32-true`` (fp32 throughout) or ``bf16-mixed`` (the forward pass under bf16
            autocast, as Lightning's ``bf16-mixed``; weights and rewards stay fp32): faster where
            bf16 is native (GPUs since Ampere, CPUs with AVX-512 BF16 or AMX), rewards that differ
            from fp32's in the second or third digit. Compare rewards only at one precision.
        critic_max_concurrency: Most requests in flight to that endpoint at once, from every caller
            together (default: the critic's ``endpoint.max_concurrency``, 8); raise it for a
            served critic with room for more.
        shared_prompt: Score the completions of one prompt (a pair, a GRPO group, a benchmark
            row's completions) together, the prompt computed once and each completion attending to
            it alone, as ``data.layout.shared_prompt`` trains: fewer tokens through the model where
            completions share long prompts; rewards equal the padded forward's within rounding.
    """

    def __init__(self, model: str | Path, batch_size: int = 16, cache_dir: Optional[str | Path] = None,
                 device: str = "auto", critic_base_url: Optional[str] = None,
                 critic_api_key_env: Optional[str] = None,
                 critic_backend: Optional[Literal["auto", "vllm", "transformers"]] = None,
                 precision: Precision = "32-true", critic_max_concurrency: Optional[int] = None,
                 shared_prompt: bool = False):
        if precision not in PRECISIONS:
            raise InputError(f"--precision {precision!r}: use one of {', '.join(PRECISIONS)}")
        if critic_max_concurrency is not None and critic_max_concurrency < 1:
            raise InputError(f"--critic_max_concurrency must be >= 1, got {critic_max_concurrency}")
        folder = Path(model)
        if not (folder / "config.json").is_file():
            raise MissingInputError(f"--model {model}: not a folder written by `export` (no config.json)")
        recipe = json.loads((folder / "config.json").read_text()).get("lightning_critrm")
        if not recipe:
            raise InputError(
                f"--model {model}: config.json has no `lightning_critrm` recipe; export it with this tool")
        from transformers import AutoTokenizer

        self.folder, self.recipe, self.batch_size = folder, recipe, batch_size
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.critique_format = (
            CritiqueFormat(recipe["critique_template"], recipe["critique_template_version"])
            if recipe["critiques"] != "none" else None
        )
        self.formatter = SequenceFormatter(self.tokenizer, recipe["max_length"], self.critique_format)
        self.cache_dir = Path(cache_dir) if cache_dir else cache_root()
        self.endpoint = {"base_url": critic_base_url, "api_key_env": critic_api_key_env,
                         "max_concurrency": critic_max_concurrency}
        self.critic_backend = critic_backend
        self._store: Optional[CritiqueStore] = None
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.precision = precision
        self.layout = Layout(shared_prompt=shared_prompt)
        if precision == "bf16-mixed" and fastest_dtype(self.device.type) != "bfloat16":
            log.warning(f"--precision bf16-mixed: this {self.device.type} has no native bf16, so it is "
                        "emulated and far slower than fp32; use --precision 32-true here")
        self._net = None

    @property
    def net(self):
        """The model, loaded at its first use: after a local critic has written the critiques a
        first call needs, so the two never hold accelerator memory at once on the way in."""
        if self._net is None:
            from transformers import AutoModelForSequenceClassification

            if self.writes_critiques:
                net = _writer_reward_model(self.folder)
            else:
                net = AutoModelForSequenceClassification.from_pretrained(self.folder)
                if self.layout.shared_prompt:  # the same weights, read by a model that takes layouts
                    net = _classifier_reward_model(net)
            self._net = net.to(self.device).eval()
        return self._net

    @property
    def writes_critiques(self) -> bool:
        """Whether the model writes its own critiques (it is then its own critic)."""
        return bool(self.recipe.get("writes_critiques"))

    @property
    def critiques_from(self) -> str:
        """Where the model's critiques come from: ``generate`` (its critic), ``columns`` (the caller
        gives them) or ``none`` (it reads none)."""
        return self.recipe["critiques"]

    @property
    def reward_stats(self) -> Optional[dict]:
        """The validation rewards' ``mean`` and ``std`` the export stored, if it did."""
        return self.recipe.get("reward_stats")

    def critiques(self, items: Sequence[Item], progress: bool = True) -> list[Optional[str]]:
        """The recorded critic's critique of each item (missing ones generated and cached; None
        where generation failed)."""
        store = self.critique_store()
        store.fill(items, require_cached=False, progress=progress)
        return store.lookup(items)

    def rewards(self, items: Sequence[Item], critiques: Optional[Sequence[Optional[str]]] = None,
                normalize: bool = False, progress: bool = True) -> list[Optional[float]]:
        """One reward per item, None for an item whose critique failed. ``critiques``: one per item
        for a model that read them from data columns (else the recorded critic writes them).
        ``normalize``: ``(reward - mean) / std`` with the stored validation statistics (as
        OpenRLHF's ``normalize_reward``)."""
        self.check_normalize(normalize)
        if self.critiques_from == "generate" and critiques is None:
            critiques = self.critiques(items, progress)
        rewards = self.forward(self.encode(items, critiques), progress, prompt_groups(items))
        return self.normalized(rewards) if normalize else rewards

    def check_normalize(self, normalize: bool) -> None:
        """Refuse ``normalize`` before any work when the export stored no statistics."""
        if normalize and not self.reward_stats:
            raise InputError(f"--model {self.folder}: no reward statistics to normalize with; export it "
                             "with --reward_stats true")

    def normalized(self, rewards: Sequence[Optional[float]]) -> list[Optional[float]]:
        """``(reward - mean) / std`` with the stored validation statistics; None stays None."""
        stats = self.reward_stats
        return [None if r is None else (r - stats["mean"]) / stats["std"] for r in rewards]

    def encode(self, items: Sequence[Item],
               critiques: Optional[Sequence[Optional[str]]]) -> list[Optional[list[int]]]:
        """Token ids of each item as the model reads it (prompt, completion, and its critique where
        the model reads one); None for an item whose critique is missing."""
        if self.critiques_from == "none":
            critiques = [None] * len(items)
        elif critiques is None or len(critiques) != len(items):
            raise InputError("this model reads critiques: give one critique per item")
        return [
            None if self.critique_format is not None and critique is None
            else self.formatter.encode(prompt, completion, critique).input_ids
            for (prompt, completion), critique in zip(items, critiques)
        ]

    def completion_encoder(self) -> CompletionEncoder:
        """What a benchmark formats its rows with: this model's formatter and recorded critic."""
        store = self.critique_store() if self.critiques_from == "generate" else None
        return CompletionEncoder(self.formatter, store, self.critiques_from != "none",
                                 self.tokenizer.pad_token_id, self.layout)

    def critique_store(self) -> CritiqueStore:
        """The recorded critic and its cache (built once)."""
        if self.critiques_from != "generate":
            raise InputError(f"this model's critiques come from {self.critiques_from!r}, not from a critic")
        if self._store is None:
            values = dict(self.recipe["critic"])
            if self.writes_critiques:  # its own critic, cut to the length it scores
                values["model"] = str(self.folder)
                values["engine"] = {"max_model_len": self.recipe["max_length"]}
            if self.critic_backend and values.get("backend") != "openai":
                values["backend"] = self.critic_backend
            if values.get("backend") == "openai":
                if not self.endpoint["base_url"]:
                    raise InputError(
                        f"this model read critiques by the endpoint critic {values.get('model')!r}: give "
                        "--critic_base_url (and --critic_api_key_env if it needs a key)"
                    )
                values["endpoint"] = {k: v for k, v in self.endpoint.items() if v}
            self._store = CritiqueStore.for_critic(CriticConfig.from_dict(values), self.cache_dir)
        return self._store

    def forward(self, sequences: Sequence[Optional[list[int]]], progress: bool = False,
                groups: Optional[Sequence[Sequence[int]]] = None) -> list[Optional[float]]:
        """The reward of each token sequence (None stays None), in batches sorted by length.
        ``groups``: indices of the sequences that share a prompt (:func:`prompt_groups`), laid out
        together under ``shared_prompt``."""
        kept = [i for i, s in enumerate(sequences) if s is not None]
        rewards: list[Optional[float]] = [None] * len(sequences)
        if not kept:
            return rewards
        pad = self.tokenizer.pad_token_id
        bar = tqdm(total=len(kept), desc="scoring", unit="seq", disable=not progress,
                   file=console.progress_stream())
        with torch.no_grad(), self._autocast(), bar:
            # Sorted by length, all here: under an RL trainer's process group each rank scores its own
            # completions, so nothing is dealt across ranks (rank 0 of 1).
            shared = _kept_groups(groups, kept) if self.layout.shared_prompt else None
            batches = SequenceBatches([sequences[i] for i in kept], self.batch_size, pad, self.layout,
                                      groups=shared)
            for batch in batches.build(batches.plan(0, 1)):
                batch = batch.to(self.device)
                if self.writes_critiques or self.layout.shared_prompt:  # a RewardModel: reads the layout
                    values = self.net(batch)
                else:
                    values = self.net(input_ids=batch.input_ids,
                                      attention_mask=batch.attention_mask).logits[:, 0]
                for k, value in zip(batch.ids.tolist(), values.float().tolist()):
                    rewards[kept[k]] = value
                bar.update(batch.num_sequences)
        return rewards

    def _autocast(self):
        if self.precision == "bf16-mixed":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return nullcontext()


def command_parser(command, prog: Optional[str] = None):
    """The parser of a command that scores an export (``score``, ``serve``, ``evaluate --model``):
    ``--model`` and the other :class:`ExportedRewardModel` options, with the same names and help in
    each, then the command's own (its arguments after ``reward_model``), help from the docstrings."""
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(prog=prog, description=command.__doc__.split("\n\n")[0])
    parser.add_class_arguments(ExportedRewardModel, as_group=False)
    parser.add_function_arguments(command, as_group=False, skip={"reward_model"})
    return parser


def split_model_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A command's parsed ``options`` as (:class:`ExportedRewardModel`'s, the command's own), the
    critique cache folder checked writable before any work."""
    names = inspect.signature(ExportedRewardModel).parameters
    model = {k: v for k, v in options.items() if k in names}
    if model.get("cache_dir"):
        writable_folder(model["cache_dir"], "--cache_dir")
    return model, {k: v for k, v in options.items() if k not in names and k != "config"}


def prompt_groups(items: Sequence[Item]) -> list[list[int]]:
    """Indices of the items that share a prompt (the same messages), in order of first appearance."""
    groups: dict[tuple, list[int]] = {}
    for k, (prompt, _) in enumerate(items):
        groups.setdefault(tuple((m["role"], m["content"]) for m in prompt), []).append(k)
    return list(groups.values())


def _kept_groups(groups: Optional[Sequence[Sequence[int]]], kept: list[int]) -> list[list[int]]:
    """``groups`` (each sequence alone when None) over the ``kept`` sequences, renumbered."""
    position = {i: k for k, i in enumerate(kept)}
    whole = groups if groups is not None else [[i] for i in position]
    return [own for group in whole if (own := [position[i] for i in group if i in position])]


def _classifier_reward_model(classifier):
    """The :class:`RewardModel` of an exported sequence classifier: its base model and score head."""
    from lightning_critrm.model.reward_model import RewardModel

    model = RewardModel(getattr(classifier, classifier.base_model_prefix))
    model.score.load_state_dict(classifier.score.state_dict())
    return model


def _writer_reward_model(folder: Path):
    """The :class:`RewardModel` of a folder that writes its critiques: its causal language model and
    the reward head beside it."""
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from lightning_critrm.model.export import REWARD_HEAD_FILE
    from lightning_critrm.model.reward_model import RewardModel

    model = RewardModel(AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32))
    model.score.load_state_dict({"weight": load_file(str(folder / REWARD_HEAD_FILE))["score.weight"]})
    return model
