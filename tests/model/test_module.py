import json

import lightning as L
import pytest
import torch
from torch.testing import assert_close

from lightning_critrm.data import PreferenceDataModule
from lightning_critrm.data.collate import PairCollator
from lightning_critrm.model import CritiqueRewardModel
from lightning_critrm.model.schedules import ConstantLR

FEATURES = [
    {"chosen_input_ids": [5, 6, 7, 8, 2], "rejected_input_ids": [5, 9, 2]},
    {"chosen_input_ids": [11, 2], "rejected_input_ids": [11, 12, 13, 14, 15, 16, 2]},
]


def built(backbone, **kw):
    model = CritiqueRewardModel(backbone=backbone, **kw)
    model.configure_model()
    return model


@pytest.mark.parametrize("which, pooling", [("tiny_decoder_dir", "last"), ("tiny_encoder_dir", "first")])
def test_rewards_do_not_depend_on_padding_side(request, which, pooling):
    model = built(request.getfixturevalue(which), pooling=pooling).eval()
    right = PairCollator(pad_token_id=0, padding_side="right")(FEATURES)
    left = PairCollator(pad_token_id=0, padding_side="left")(FEATURES)
    with torch.no_grad():
        r_right = model(right["input_ids"], right["attention_mask"])
        r_left = model(left["input_ids"], left["attention_mask"])
    assert r_right.shape == (4,) and r_right.dtype == torch.float32
    assert_close(r_right, r_left, atol=1e-4, rtol=1e-4)


def test_reward_is_fp32_under_bf16_autocast(tiny_decoder_dir):
    model = built(tiny_decoder_dir)
    batch = PairCollator(pad_token_id=0)(FEATURES)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        rewards = model(batch["input_ids"], batch["attention_mask"])
    assert rewards.dtype == torch.float32


def test_head_is_named_score_and_dropout_is_off(tiny_encoder_dir):
    model = built(tiny_encoder_dir, pooling="first")
    assert model.score.weight.shape == (1, 64)
    assert all(m.p == 0.0 for m in model.backbone.modules() if isinstance(m, torch.nn.Dropout))
    assert model.backbone.training


def datamodule(tmp_path, pairs_file, backbone, **kw):
    return PreferenceDataModule(
        source=str(pairs_file), val_source=str(pairs_file), backbone=backbone,
        cache_dir=str(tmp_path / "cache"), batch_size=4, **kw,
    )


def trainer(max_steps, **kw):
    kw.setdefault("limit_val_batches", 0)
    return L.Trainer(
        accelerator="cpu", max_steps=max_steps, logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0, **kw,
    )


def test_overfits_a_handful_of_pairs_to_accuracy_one(tmp_path, pairs_file, tiny_decoder_dir):
    # Critiques off: the model must tell "42." from "43." itself. A swapped chosen/rejected
    # order, or a reward read at the wrong token, cannot reach 1.0 here.
    L.seed_everything(0)
    dm = datamodule(tmp_path, pairs_file, tiny_decoder_dir, critiques="none", max_train_pairs=6, max_val_pairs=6)
    model = CritiqueRewardModel(backbone=tiny_decoder_dir, lr=3e-3, lr_scheduler=ConstantLR)
    trainer(60).fit(model, dm)
    dm.val_dataset = dm.train_dataset  # score exactly the pairs it trained on
    metrics = trainer(1, limit_val_batches=None).validate(model, dm, verbose=False)[0]
    assert metrics["val/acc"] == 1.0
    assert metrics["val/loss"] < 0.3
    # Score each completion on its own, from the source file's text, not through the collator:
    # a chosen/rejected swap anywhere in data or model would make these comparisons fail.
    rows = {r["prompt"]: r for r in map(json.loads, pairs_file.read_text().splitlines())}
    model.eval()
    for prompt_json in dm.train_dataset["prompt"]:
        prompt = json.loads(prompt_json)
        row = rows[prompt[0]["content"]]
        with torch.no_grad():
            r_good, r_bad = (
                model(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long)).item()
                for ids in (dm.formatter.encode(prompt, row[k], None).input_ids for k in ("chosen", "rejected"))
            )
        assert r_good > r_bad


def test_every_parameter_changes_after_a_few_steps(tmp_path, pairs_file, tiny_decoder_dir):
    L.seed_everything(0)
    model = built(tiny_decoder_dir, lr=1e-3)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer(3).fit(model, datamodule(tmp_path, pairs_file, tiny_decoder_dir))
    unchanged = [n for n, p in model.named_parameters() if torch.equal(before[n], p.detach())]
    assert not unchanged
    assert "score.weight" in before


@pytest.mark.parametrize("precision, checkpointing", [("bf16-mixed", False), ("32-true", True)])
def test_bf16_mixed_and_gradient_checkpointing_train(tmp_path, pairs_file, tiny_decoder_dir, precision, checkpointing):
    model = CritiqueRewardModel(backbone=tiny_decoder_dir, lr=1e-3, gradient_checkpointing=checkpointing)
    trainer(2, precision=precision).fit(model, datamodule(tmp_path, pairs_file, tiny_decoder_dir))
    assert model.backbone.is_gradient_checkpointing == checkpointing
    assert model.score.weight.dtype == torch.float32
    assert torch.isfinite(model.score.weight).all()
