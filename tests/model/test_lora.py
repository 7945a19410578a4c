import lightning as L
import pytest
import torch

from lightning_critrm.data import PreferenceDataModule
from lightning_critrm.model import CritiqueRewardModel
from lightning_critrm.model.lora import LoraSettings

pytest.importorskip("peft", reason="LoRA is the optional 'lora' extra; `make test` installs it")

SETTINGS = LoraSettings(r=4, alpha=8, dropout=0.1, target_modules=["q_proj", "v_proj"])


def trainer(steps, **kw):
    return L.Trainer(accelerator="cpu", max_steps=steps, logger=False, enable_progress_bar=False,
                     enable_checkpointing=False, enable_model_summary=False, num_sanity_val_steps=0, **kw)


def datamodule(tmp_path, pairs_file, backbone):
    return PreferenceDataModule(source=str(pairs_file), val_source=str(pairs_file), backbone=backbone,
                                cache_dir=str(tmp_path / "cache"), batching={"batch_size": 4})


def test_only_adapters_and_head_train_and_checkpoints_hold_only_them(tmp_path, pairs_file, tiny_decoder_dir):
    L.seed_everything(0)
    model = CritiqueRewardModel(backbone=tiny_decoder_dir, lr=1e-2, lora=SETTINGS)
    model.configure_model()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or n == "reward_model.score.weight" for n in trainable)
    assert "reward_model.score.weight" in trainable
    # LoRA's dropout is the user's setting; the backbone's own dropout stays off.
    dropouts = {n: m.p for n, m in model.backbone.named_modules() if isinstance(m, torch.nn.Dropout)}
    assert dropouts and all(p == (0.1 if "lora_dropout" in n else 0.0) for n, p in dropouts.items())

    fit = trainer(3, limit_val_batches=0)
    fit.fit(model, datamodule(tmp_path, pairs_file, tiny_decoder_dir))
    changed = {n for n, p in model.named_parameters() if not torch.equal(before[n], p.detach())}
    assert changed == {n for n in trainable if "lora_A" in n or "lora_B" in n or "score" in n}
    assert any("lora_B" in n for n in changed)  # B starts at zero: it moved, so the adapters learn

    path = tmp_path / "adapters.ckpt"
    fit.save_checkpoint(path)
    saved = torch.load(path, weights_only=True)["state_dict"]
    assert set(saved) == trainable  # adapters and head only

    # A fresh model reads the frozen weights from the backbone and the rest from the checkpoint.
    metrics = [trainer(1).validate(m, datamodule(tmp_path, pairs_file, tiny_decoder_dir), ckpt_path=ckpt,
                                   verbose=False)[0]
               for m,
               ckpt in ((model, None),
                        (CritiqueRewardModel(backbone=tiny_decoder_dir, lora=SETTINGS), str(path)))]
    assert metrics[0]["val/loss"] == pytest.approx(metrics[1]["val/loss"], abs=1e-6)
