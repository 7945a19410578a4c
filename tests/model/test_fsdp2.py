"""FSDP2 (ModelParallelStrategy) on 2 CPU processes over gloo, from the command line."""

import os
import subprocess
import sys

import pytest
import torch
import yaml

from tests.conftest import REPO, arithmetic_rows, write_jsonl

CONSTANT_LR = "lightning_critrm.model.schedules.ConstantLR"


def val_losses(run_dir, tag: str = "val/loss") -> dict[int, float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    losses = {}
    for version in sorted((run_dir / "lightning_logs").glob("version_*")):
        events = EventAccumulator(str(version))
        events.Reload()
        losses.update({e.step: e.value for e in events.Scalars(tag)})
    return losses


@pytest.fixture
def config(tmp_path, tiny_decoder_dir):
    # 22 pairs: 6 held out, 16 trained on in batches of 2, so 4 steps an epoch on 2 ranks and on
    # one process that accumulates 2 batches per step: the same pairs in every optimizer step.
    pairs = write_jsonl(tmp_path / "pairs.jsonl", arithmetic_rows(22))

    def write(name: str, model: dict | None = None, **trainer) -> str:
        values = {
            "seed_everything": 0,
            "trainer": {
                "accelerator": "cpu", "devices": 2, "max_steps": 8, "log_every_n_steps": 1,
                "enable_progress_bar": False, "enable_model_summary": False,
                "default_root_dir": str(tmp_path / name),
                "strategy": {"class_path": "lightning.pytorch.strategies.ModelParallelStrategy",
                             "init_args": {"data_parallel_size": 2, "tensor_parallel_size": 1}},
                **trainer,
            },
            "model": {"backbone": tiny_decoder_dir, "lr": 1e-3, "lr_scheduler": CONSTANT_LR, **(model or {})},
            "data": {"source": str(pairs), "batching": {"batch_size": 2, "eval_batch_size": 3},
                     "val_fraction": 0.25,
                     "cache_dir": str(tmp_path / "cache")},
        }
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(values))
        return str(path)

    return write


SAVE_FULL = "--trainer.callbacks+=tests.model.fsdp2_callbacks.SaveFullStateDict"


def fit(config_path: str, *args: str, full_state_dict=None) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    if full_state_dict is not None:
        env["FULL_STATE_DICT_PATH"] = str(full_state_dict)
        args = (*args, SAVE_FULL)
    proc = subprocess.run(
        [sys.executable, "-m", "lightning_critrm", "fit", "--config", config_path, *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]


def test_fsdp2_shards_parameters_matches_one_process_and_resumes(tmp_path, config):
    from torch.distributed.checkpoint import FileSystemReader

    fit(config("fsdp2"), full_state_dict=tmp_path / "fsdp2.pt")
    fit(config("single", devices=1, strategy="auto", accumulate_grad_batches=2),
        full_state_dict=tmp_path / "single.pt")
    sharded, single = val_losses(tmp_path / "fsdp2"), val_losses(tmp_path / "single")
    assert sorted(sharded) == [3, 7]  # validated at the end of each epoch (steps 4 and 8)
    assert sharded[7] < 0.3  # it learned: the critiques state the verdict (chance: 0.693)
    for step in sharded:  # the same optimizer steps on the same pairs: the same model
        assert sharded[step] == pytest.approx(single[step], abs=1e-4)

    # The shards consolidate into the one-process model, under Hugging Face names (for export).
    consolidated, plain = torch.load(tmp_path / "fsdp2.pt"), torch.load(tmp_path / "single.pt")
    assert sorted(consolidated) == sorted(plain) and "score.weight" in consolidated
    for name, tensor in plain.items():
        torch.testing.assert_close(consolidated[name], tensor, atol=1e-5, rtol=1e-4)

    # Each rank wrote its own half of every large parameter: a distributed checkpoint.
    checkpoint = tmp_path / "fsdp2" / "checkpoints" / "last.ckpt"
    assert sorted(p.name for p in checkpoint.glob("*.distcp")) == ["__0_0.distcp", "__1_0.distcp"]
    metadata = FileSystemReader(str(checkpoint)).read_metadata().state_dict_metadata
    embed = next(v for k, v in metadata.items() if k.endswith("embed_tokens.weight") and "optimizer" not in k)
    rows = embed.size[0]
    assert [(c.offsets[0], c.sizes[0]) for c in embed.chunks] == [(0, (rows + 1) // 2),
                                                                  ((rows + 1) // 2, rows // 2)]

    # The sharded checkpoint exports (consolidated without a process group) to the same weights.
    from safetensors.torch import load_file

    from lightning_critrm.cli import main

    out = tmp_path / "exported"
    main(["export", "--config", config("fsdp2"), "--ckpt_path", str(checkpoint), "--out", str(out),
          "--trainer.devices", "1", "--trainer.strategy", "auto"])
    exported = load_file(out / "model.safetensors")
    assert sorted(exported) == sorted(consolidated)
    for name, tensor in consolidated.items():
        assert torch.equal(exported[name], tensor.float()), name  # (the tiny tokenizer has its own pad)

    # Stop after epoch 0, resume from the sharded checkpoint: the same losses as without a stop.
    fit(config("resumed", max_steps=4))
    fit(config("resumed"), "--ckpt_path", "last")
    resumed = val_losses(tmp_path / "resumed")
    # (Lightning logs the validation after a restart one step later: compare the last one.)
    assert resumed[max(resumed)] == pytest.approx(sharded[7], abs=1e-6)


def test_head_computes_in_fp32_with_bf16_parameters(tiny_decoder_dir):
    from lightning_critrm.layout.batch import RewardBatch
    from lightning_critrm.model import CritiqueRewardModel

    model = CritiqueRewardModel(backbone=tiny_decoder_dir)
    model.configure_model()
    model.to(torch.bfloat16)  # what FSDP's bf16 parameters and bf16-true give the head
    rewards = model(RewardBatch.padded([[5, 6, 2], [7, 2]], pad_token_id=0))
    assert rewards.dtype == torch.float32 and torch.isfinite(rewards).all()


def test_fsdp2_with_lora_matches_one_process(tmp_path, config):
    pytest.importorskip("peft", reason="LoRA is the optional 'lora' extra; `make test` installs it")
    lora = {"lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}, "lr": 1e-2}
    fit(config("fsdp2_lora", model=lora))
    fit(config("single_lora", model=lora, devices=1, strategy="auto", accumulate_grad_batches=2))
    sharded, single = val_losses(tmp_path / "fsdp2_lora"), val_losses(tmp_path / "single_lora")
    assert sorted(sharded) == [3, 7]
    for step in sharded:
        assert sharded[step] == pytest.approx(single[step], abs=1e-4)
    assert sharded[7] < sharded[3] < 0.693  # the adapters and head learn


def test_fsdp2_learning_critiques_with_tied_embeddings_matches_one_process(tmp_path, config,
                                                                         tiny_decoder_dir):
    # The language-model head tied to the input embeddings (as in SmolLM2): one parameter that
    # the critique loss and the embedding lookup both train, sharded in the root unit.
    from transformers import AutoConfig, AutoTokenizer, LlamaForCausalLM

    tied = tmp_path / "tied"
    torch.manual_seed(0)
    tied_config = AutoConfig.from_pretrained(tiny_decoder_dir, tie_word_embeddings=True)
    LlamaForCausalLM(tied_config).save_pretrained(tied)
    AutoTokenizer.from_pretrained(tiny_decoder_dir).save_pretrained(tied)
    model = {"backbone": str(tied), "critique_lm_coef": 0.5, "lr": 3e-3}
    fit(config("fsdp2_lm", model=model), full_state_dict=tmp_path / "fsdp2_lm.pt")
    fit(config("single_lm", model=model, devices=1, strategy="auto", accumulate_grad_batches=2),
        full_state_dict=tmp_path / "single_lm.pt")
    for tag in ("val/loss", "val/critique_lm_loss"):
        sharded, single = val_losses(tmp_path / "fsdp2_lm", tag), val_losses(tmp_path / "single_lm", tag)
        assert sorted(sharded) == [3, 7]
        for step in sharded:
            assert sharded[step] == pytest.approx(single[step], abs=1e-4), tag
    lm = val_losses(tmp_path / "fsdp2_lm", "val/critique_lm_loss")
    assert lm[7] < 0.8 * lm[3]  # the critique writer learns
    consolidated, plain = torch.load(tmp_path / "fsdp2_lm.pt"), torch.load(tmp_path / "single_lm.pt")
    assert sorted(consolidated) == sorted(plain) and "lm_head.weight" in consolidated
    for name, tensor in plain.items():
        torch.testing.assert_close(consolidated[name], tensor, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(consolidated["lm_head.weight"], consolidated["model.embed_tokens.weight"])
