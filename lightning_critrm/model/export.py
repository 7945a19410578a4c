"""A trained reward model as a plain Hugging Face folder that scores as the trainer does.

The folder loads with ``transformers.AutoModelForSequenceClassification`` (4.4x and 5.x), in
vLLM's pooling runner, and in the tools built on them (TRL, OpenRLHF, RewardBench's package). They
all render a conversation with ``tokenizer.apply_chat_template`` and read the reward at the last
token that is not padding, which is the text and the token the trainer scores
(:mod:`lightning_critrm.data.formatting`). Three things make that hold in every reader:

- the tokenizer ships the trainer's chat template, which also folds a ``critique`` message into
  the assistant turn for a model that reads critiques;
- the pad token is never a token of a scored text (else "the last token that is not padding"
  would stop early), so a tokenizer that pads with EOS, or with any token its template writes,
  gets a pad token of its own (one new embedding row, never seen in real text);
- ``problem_type: regression``: vLLM and transformers return the raw reward, not its sigmoid.

A model that writes its own critiques is written as the causal language model it is
(``AutoModelForCausalLM``: vLLM and transformers generate from the folder) with its reward head
beside it in ``reward_head/reward_head.safetensors``; ``score``, the reward function and the server
read both.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict
from pathlib import Path
from typing import Optional

import torch

from lightning_critrm.atomic_write import atomic_folder
from lightning_critrm.backbones import write_top_level_rope_theta
from lightning_critrm.critique.config import Sampling
from lightning_critrm.errors import InputError

EXPORT_PAD_TOKEN = "<|reward_pad|>"
_PROBE = [{"role": "user", "content": "Is this a probe?"}, {"role": "assistant", "content": "It is."}]
# Read by transformers 4.x, which has no TokenizersBackend (5.x's name for a tokenizers.json tokenizer).
_PORTABLE_TOKENIZER_CLASS = "PreTrainedTokenizerFast"
#: The reward head of a model that writes its own critiques, beside its language model. In a folder of
#: its own: vLLM (like other Hugging Face loaders) loads every top-level ``*.safetensors`` of a model
#: folder into the causal LM, which has no ``score`` and refuses to start.
REWARD_HEAD_FILE = "reward_head/reward_head.safetensors"


def export_reward_model(
    reward_model,
    backbone_path: str,
    tokenizer,
    chat_template: str,
    out: Path,
    recipe: dict,
) -> Path:
    """Write ``reward_model`` (a :class:`RewardModel` with LoRA merged) to ``out`` atomically: a
    sequence classifier, or for a model that writes its critiques, its causal language model and
    :data:`REWARD_HEAD_FILE`.

    Args:
        reward_model: The model to export (pooling ``last``: decoders).
        backbone_path: Folder of the pretrained backbone, for its config.
        tokenizer: The tokenizer that formatted the training inputs.
        chat_template: The template that rendered them (the formatter's); shipped as the tokenizer's.
        out: The folder to write; must not exist.
        recipe: How inputs are formatted and critiqued, and the reward statistics; recorded in
            ``config.json`` under ``lightning_critrm`` and in the model card.
    """
    from safetensors.torch import save_file
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification

    if reward_model.pooling != "last":
        raise InputError(
            "export writes a Hugging Face sequence classifier, which reads the last token: it "
            f"supports decoder backbones (model.pooling: last), not pooling: {reward_model.pooling}"
        )
    if out.exists():
        raise InputError(f"--out {out}: already exists; give a new folder")
    config = AutoConfig.from_pretrained(backbone_path)
    config.architectures = None
    state = {k: v.detach().to("cpu", torch.float32) for k, v in reward_model.state_dict().items()}
    head = None
    if reward_model.writes_critiques:
        hf = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        head = {"score.weight": state.pop("score.weight").contiguous()}
        hf.load_state_dict(state, strict=True)  # model.* and lm_head.weight: the causal LM's names
        hf.tie_weights()
    else:
        config.num_labels = 1
        hf = AutoModelForSequenceClassification.from_config(config, dtype=torch.float32)
        hf.load_state_dict(state, strict=True)  # the same names: RewardModel mirrors the HF layout
    tokenizer = copy.deepcopy(tokenizer)
    tokenizer.chat_template = chat_template
    if not pad_is_safe(tokenizer):
        tokenizer.add_special_tokens({"pad_token": EXPORT_PAD_TOKEN})
        hf.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    hf.config.pad_token_id = tokenizer.pad_token_id
    if head is None:
        hf.config.problem_type = "regression"
    hf.config.architectures = [type(hf).__name__]
    hf.config.lightning_critrm = recipe
    with atomic_folder(out, complete_marker="config.json") as tmp:
        hf.save_pretrained(tmp, safe_serialization=True)
        if head is not None:
            (tmp / REWARD_HEAD_FILE).parent.mkdir()
            save_file(head, str(tmp / REWARD_HEAD_FILE))
        tokenizer.save_pretrained(tmp)
        write_portable_tokenizer_config(tmp / "tokenizer_config.json", chat_template)
        write_top_level_rope_theta(tmp / "config.json")
        (tmp / "README.md").write_text(model_card(recipe, type(hf).__name__))
    return out


def pad_is_safe(tokenizer) -> bool:
    """Whether the pad token can never be a token of a scored text: readers find the reward at the
    last token that is not the pad token, so a pad that the template writes (EOS, an end-of-turn)
    would move it."""
    pad = tokenizer.pad_token_id
    if pad is None or pad in (tokenizer.eos_token_id, tokenizer.bos_token_id):
        return False
    text = tokenizer.apply_chat_template(_PROBE, tokenize=False)
    return pad not in tokenizer(text, add_special_tokens=False)["input_ids"]


def write_portable_tokenizer_config(path: Path, chat_template: str) -> None:
    """Make ``tokenizer_config.json`` read the same in transformers 4.4x-4.5x and 5.x: a tokenizer
    class both know, the model's input names, and the chat template inline (older readers do not
    all read ``chat_template.jinja``)."""
    config = json.loads(path.read_text())
    if config.get("tokenizer_class") in (None, "TokenizersBackend"):
        config["tokenizer_class"] = _PORTABLE_TOKENIZER_CLASS
    config["model_input_names"] = ["input_ids", "attention_mask"]
    config["chat_template"] = chat_template
    path.write_text(json.dumps(config, indent=2, ensure_ascii=False))


def model_card(recipe: dict, architecture: str) -> str:
    if recipe.get("writes_critiques"):
        return writer_model_card(recipe, architecture)
    reads_critiques = recipe.get("critiques") != "none"
    critic = recipe.get("critic") or {}
    if not reads_critiques:
        what = "without critiques (a plain reward model: prompt and completion only)"
    elif critic:
        what = (
            f"reading a critique of each completion, written by `{critic.get('model')}` through "
            f"`{critic.get('backend')}` (critic template `{critic.get('template_version')}`; "
            "`config.json` records its sampling)"
        )
    else:
        what = "reading a critique of each completion, taken from the data's critique columns"
    critique_message = (
        '\n    {"role": "critique", "content": critique},  # a critique of this completion'
        if reads_critiques else ""
    )
    source = (
        "`python -m lightning_critrm score` writes missing ones with that critic (same template and "
        "sampling), as training did"
        if critic else "give it critiques like those of its training data"
    )
    critique_text = f"""
The critique is a message of role `critique` right after the assistant turn. The chat template
folds it into that turn as `completion + block`, with this block (version
`{recipe.get("critique_template_version")}`, as a JSON string), so the text is the one the model
was trained on: `{json.dumps(recipe.get("critique_template"))}`. The model learned from one kind of
critique: {source}.
""" if reads_critiques else ""
    cut_order = ("then the end of the critique, then the end of the completion" if reads_critiques
                 else "then the end of the completion")
    stats = recipe.get("reward_stats")
    stats_text = (
        f"\nOn its validation set ({stats['sequences']} completions) the rewards have mean "
        f"{stats['mean']:.4f} and standard deviation {stats['std']:.4f} (`config.json`: "
        "`lightning_critrm.reward_stats`); `python -m lightning_critrm score --normalize true` scores "
        "`(reward - mean) / std`.\n"
        if stats else ""
    )
    return f"""---
library_name: transformers
tags: [reward-model, lightning_critrm]
---
# Reward model (lightning_critrm)

A scalar reward model (`{architecture}`, one output) trained with the pairwise Bradley-Terry loss on
preference pairs, {what}.

- Backbone: `{recipe.get("backbone")}`
- Input: the conversation rendered by this folder's chat template, at most {recipe.get("max_length")}
  tokens. The reward is the model's output at the last token, whatever the template writes last
  (an end-of-turn token, a newline).
- Longer texts were cut in training: first the start of the prompt, {cut_order}, keeping what the
  template writes after the turn. Tools that cut otherwise (or not at all) score such texts
  differently; texts that fit score the same everywhere.
{critique_text}{stats_text}
## Rewards with plain transformers

```python
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

tokenizer = AutoTokenizer.from_pretrained(folder)
model = AutoModelForSequenceClassification.from_pretrained(folder, torch_dtype=torch.float32)
messages = [
    {{"role": "user", "content": prompt}},
    {{"role": "assistant", "content": completion}},{critique_message}
]
ids = tokenizer.apply_chat_template(messages, return_tensors="pt", return_dict=True)
reward = model(**ids).logits[0, 0].item()
```

Batches may be padded on either side with the tokenizer's pad token (`{EXPORT_PAD_TOKEN}` where
training padded with a token the template writes). vLLM serves it as a reward model:
`LLM(model=folder, runner="pooling").classify(texts)` returns the raw reward of each rendered text
(`problem_type: regression`: no sigmoid). `config.json` records the whole recipe under
`lightning_critrm`; `python -m lightning_critrm score` reads it.
"""


def writer_model_card(recipe: dict, architecture: str) -> str:
    writer = recipe["critic"]["sampling"]
    return f"""---
library_name: transformers
tags: [reward-model, critique-out-loud, lightning_critrm]
---
# Reward model that writes its own critiques (lightning_critrm)

A causal language model (`{architecture}`) with a scalar reward head (`{REWARD_HEAD_FILE}`, one
row `score.weight`) over its last hidden state, trained with the pairwise Bradley-Terry loss plus a
language-model loss on the critique of each completion (the critique-out-loud recipe).

To score a completion, the model first writes a critique of it: it continues the conversation
rendered by this folder's chat template, with the completion as the assistant turn, from the
critique block's opening `{json.dumps(recipe.get("critique_template", "").split("{critique}")[0])}`
until the block closes (at most {writer.get("max_new_tokens")} tokens, temperature
{writer.get("temperature")}). The reward is the head's output at the last token of the text with
that critique in it (a message of role `critique` after the assistant turn, which the chat template
folds in), at most {recipe.get("max_length")} tokens.

vLLM and transformers generate from this folder as from any causal LM. `python -m lightning_critrm
score`, the reward function and the reward server do both steps; `config.json` records the recipe
under `lightning_critrm`.
- Backbone: `{recipe.get("backbone")}`
"""


def recipe_of(module, datamodule, reward_stats: Optional[dict] = None) -> dict:
    """How a trained model's inputs were made, from its module and data module settings, and the
    statistics of its rewards on the validation set (``None``: not computed)."""
    hp = datamodule.hparams
    critic: Optional[dict] = None
    if module.writes_critiques:
        # Its own critic: the folder itself (``model`` is filled in where the folder is read),
        # continuing the scored text, greedy.
        critic = {"backend": "auto", "model": None, "dtype": "auto", "prompting": "continuation",
                  "template": hp.critique_format["template"],
                  "template_version": hp.critique_format["version"],
                  "allow_score": False, "sampling": asdict(Sampling())}
    elif hp.critiques == "generate" and datamodule.critic is not None:
        # Everything that keys its critiques (so a scorer can write the same ones), nothing about
        # where it ran: no endpoint, no key variable, no cache path.
        critic = {k: v for k, v in datamodule.critic.as_dict().items() if k in (
            "backend", "model", "dtype", "template", "template_version", "allow_score", "sampling")}
    writer = {}
    if module.writes_critiques:
        writer = {"writes_critiques": True, "trained_on_critiques": hp.critiques}
    return json.loads(json.dumps({
        "backbone": module.hparams.backbone,
        "critiques": "generate" if module.writes_critiques else hp.critiques,
        "critique_template": hp.critique_format["template"],
        "critique_template_version": hp.critique_format["version"],
        "critic": critic,
        "max_length": hp.max_length,
        "scoring_token": "last token of the chat template's text",
        "reward_stats": reward_stats,
        # A model that writes its own critiques: ``critic`` says how; it learned from those of
        # ``trained_on_critiques`` (the data's columns or a critic).
        **writer,
    }))
