"""A trained reward model as a plain Hugging Face folder.

The folder loads with ``transformers.AutoModelForSequenceClassification`` (safetensors, config,
tokenizer) and gives the trainer's rewards for the same formatted text, so TRL, the reward-bench
project's scripts or any inference stack can use it without this package.

One rule needs care. A sequence classifier reads the last token that is not the pad token, and
this trainer scores at the EOS that closes the sequence. Where the tokenizer pads with EOS (many
chat models do), the two disagree: the classifier would read the token before the EOS. Such an
export gets a pad token of its own (one new embedding row, never seen in real text).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Optional

import torch

from lightning_critrm.atomic_folder import atomic_folder
from lightning_critrm.errors import InputError

EXPORT_PAD_TOKEN = "<|reward_pad|>"


def export_reward_model(reward_model, backbone_path: str, tokenizer, out: Path, recipe: dict) -> Path:
    """Write ``reward_model`` (a :class:`RewardModel` with LoRA merged) to ``out`` atomically.

    Args:
        reward_model: The model to export (pooling ``last``: decoders).
        backbone_path: Folder of the pretrained backbone, for its config.
        tokenizer: The tokenizer that formatted the training inputs.
        out: The folder to write; must not exist.
        recipe: How inputs are formatted and critiqued (template, version, critic, max length);
            recorded in ``config.json`` under ``lightning_critrm`` and in the model card.
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification

    if reward_model.pooling != "last":
        raise InputError(
            "export writes a Hugging Face sequence classifier, which reads the last token: it "
            f"supports decoder backbones (model.pooling: last), not pooling: {reward_model.pooling}"
        )
    if out.exists():
        raise InputError(f"--out {out}: already exists; give a new folder")
    config = AutoConfig.from_pretrained(backbone_path)
    config.num_labels = 1
    config.architectures = None
    hf = AutoModelForSequenceClassification.from_config(config, torch_dtype=torch.float32)
    state = {k: v.detach().to("cpu", torch.float32) for k, v in reward_model.state_dict().items()}
    hf.load_state_dict(state, strict=True)  # the same names: RewardModel mirrors the HF layout
    tokenizer = copy.deepcopy(tokenizer)
    scoring = tokenizer.eos_token_id
    if tokenizer.pad_token_id is None or tokenizer.pad_token_id == scoring:
        tokenizer.add_special_tokens({"pad_token": EXPORT_PAD_TOKEN})
        hf.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    hf.config.pad_token_id = tokenizer.pad_token_id
    hf.config.architectures = [type(hf).__name__]
    hf.config.lightning_critrm = recipe
    with atomic_folder(out, complete_marker="config.json") as tmp:
        hf.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "README.md").write_text(model_card(recipe, type(hf).__name__, tokenizer.pad_token))
    return out


def model_card(recipe: dict, architecture: str, pad_token: str) -> str:
    critic = recipe.get("critic") or {}
    critic_line = (
        f"written by `{critic.get('model')}` through `{critic.get('backend')}` (template "
        f"`{critic.get('template_version')}`)"
        if critic else "read from the data's critique columns" if recipe.get("critiques") == "columns" else "none"
    )
    return f"""---
library_name: transformers
tags: [reward-model, lightning_critrm]
---
# Reward model (lightning_critrm)

A scalar reward model (`{architecture}`, one output) trained with the pairwise Bradley-Terry loss on
preference pairs, reading a critique of each completion (arXiv 2405.20850).

- Backbone: `{recipe.get("backbone")}`
- Critiques: {recipe.get("critiques")}, {critic_line}
- Input format: the prompt as the user turn and the completion as the assistant turn of the
  tokenizer's chat template, then the critique block, then the EOS token, at most
  {recipe.get("max_length")} tokens. The reward is the output at that final EOS.
- Critique block (version `{recipe.get("critique_template_version")}`):

```
{recipe.get("critique_template")}
```

Load it with `AutoModelForSequenceClassification.from_pretrained(<this folder>)`. Pad with
`{pad_token}` (the tokenizer's pad token): the classifier reads the last token that is not padding,
which must be the closing EOS. `config.json` records the whole recipe under `lightning_critrm`.
"""


def recipe_of(module, datamodule) -> dict:
    """How a trained model's inputs were made, from its module and data module settings."""
    hp = datamodule.hparams
    critic: Optional[dict] = None
    if hp.critiques == "generate" and datamodule.critic is not None:
        # Everything that keys its critiques (so a scorer can write the same ones), nothing about
        # where it ran: no endpoint, no key variable, no cache path.
        critic = {k: v for k, v in datamodule.critic.as_dict().items() if k in (
            "backend", "model", "dtype", "template", "template_version", "allow_score", "sampling")}
    return json.loads(json.dumps({
        "backbone": module.hparams.backbone,
        "critiques": hp.critiques,
        "critique_template": hp.critique_template,
        "critique_template_version": hp.critique_template_version,
        "critic": critic,
        "max_length": hp.max_length,
        "scoring_token": "eos",
    }))
