"""A trained model leaves the project as a plain Hugging Face folder with the same rewards."""

import json
import shutil

import pytest
import torch
import yaml

from lightning_critrm.cli import main
from lightning_critrm.layout.batch import RewardBatch
from tests.test_cli import tiny_config


def pad_is_eos_copy(tmp_path, backbone: str) -> str:
    """The tiny decoder with a tokenizer that pads with its EOS, as SmolLM2's and many chat models' do."""
    folder = tmp_path / "pad_is_eos"
    shutil.copytree(backbone, folder)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["pad_token"] = "<|im_end|>"
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    special = folder / "special_tokens_map.json"
    if special.exists():
        values = json.loads(special.read_text())
        values["pad_token"] = "<|im_end|>"
        special.write_text(json.dumps(values))
    return str(folder)


def exported_rewards(out, sequences: list[list[int]]) -> torch.Tensor:
    """Rewards from the exported folder alone, through transformers, right-padded with its pad token."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    hf = AutoModelForSequenceClassification.from_pretrained(out).eval()
    pad = AutoTokenizer.from_pretrained(out).pad_token_id
    width = max(map(len, sequences))
    ids = torch.tensor([s + [pad] * (width - len(s)) for s in sequences])
    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in sequences])
    with torch.no_grad():
        return hf(input_ids=ids, attention_mask=mask).logits.squeeze(-1)


def trainer_rewards(cli, sequences: list[list[int]]) -> torch.Tensor:
    model = cli.model.eval()
    with torch.no_grad():
        return model(RewardBatch.padded(sequences, pad_token_id=cli.datamodule.pad_token_id))


@pytest.mark.parametrize("pad", ["own pad token", "pads with EOS"])
def test_the_export_loads_as_a_sequence_classifier_with_the_trainers_rewards(tmp_path, pairs_file,
                                                                             tiny_decoder_dir, pad):
    backbone = tiny_decoder_dir if pad == "own pad token" else pad_is_eos_copy(tmp_path, tiny_decoder_dir)
    cfg = tiny_config(tmp_path, backbone, pairs_file)
    cli = main(["fit", "--config", str(cfg), "--trainer.max_steps", "2"])
    out = tmp_path / "exported"
    main(["export", "--config", str(cfg), "--ckpt_path", "last", "--out", str(out)])

    data = cli.datamodule
    sequences = [data.val_dataset[i][k] for i in range(4) for k in ("chosen_input_ids", "rejected_input_ids")]
    assert len({len(s) for s in sequences}) > 1  # padded batches: the pooling rule is exercised
    torch.testing.assert_close(exported_rewards(out, sequences), trainer_rewards(cli, sequences), atol=1e-4,
                               rtol=1e-4)

    files = {p.name for p in out.iterdir()}
    assert "model.safetensors" in files
    assert "README.md" in files
    assert not any(f.endswith(".bin") for f in files)
    config = json.loads((out / "config.json").read_text())
    recipe = config["lightning_critrm"]
    assert recipe["critiques"] == "columns" and recipe["max_length"] == 1024
    assert "{critique}" in recipe["critique_template"]
    # Reward statistics of every validation completion, as the trainer scores them.
    val = [data.val_dataset[i][k] for i in range(len(data.val_dataset)) for k in ("chosen_input_ids",
                                                                                  "rejected_input_ids")]
    rewards = trainer_rewards(cli, val)
    assert recipe["reward_stats"]["sequences"] == len(val) == 2 * len(data.val_dataset)
    assert recipe["reward_stats"]["mean"] == pytest.approx(rewards.mean().item(), abs=1e-5)
    assert recipe["reward_stats"]["std"] == pytest.approx(rewards.std().item(), abs=1e-5)
    assert config["problem_type"] == "regression"  # vLLM returns the raw reward, not its sigmoid
    tokenizer_config = json.loads((out / "tokenizer_config.json").read_text())
    assert (config["pad_token_id"] != data.tokenizer.eos_token_id) and (
        (tokenizer_config["pad_token"] == "<|reward_pad|>") == (pad == "pads with EOS"))
    assert not list(tmp_path.glob("exported.tmp-*"))  # written atomically: nothing left beside it

    with pytest.raises(ValueError, match="already exists"):
        main(["export", "--config", str(cfg), "--ckpt_path", "last", "--out", str(out)])


def test_a_lora_checkpoint_exports_merged(tmp_path, pairs_file, tiny_decoder_dir):
    pytest.importorskip("peft", reason="LoRA is the optional 'lora' extra; `make test` installs it")
    cfg = tiny_config(tmp_path, tiny_decoder_dir, pairs_file)
    config = yaml.safe_load(cfg.read_text())
    config["model"].update(lr=1e-2,
                           lora={"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]})
    cfg.write_text(yaml.safe_dump(config))
    cli = main(["fit", "--config", str(cfg), "--trainer.max_steps", "3"])
    assert "lora_B" in " ".join(torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt",
                                           weights_only=True)["state_dict"])
    out = tmp_path / "merged"
    main(["export", "--config", str(cfg), "--ckpt_path", "last", "--out", str(out)])
    from safetensors.torch import load_file

    assert not any("lora" in name for name in load_file(out / "model.safetensors"))
    sequences = [cli.datamodule.val_dataset[i]["chosen_input_ids"] for i in range(4)]
    torch.testing.assert_close(exported_rewards(out, sequences), trainer_rewards(cli, sequences), atol=1e-4,
                               rtol=1e-4)


def test_a_lora_writer_learns_the_critique_in_its_adapters_and_exports_them_merged(tmp_path, pairs_file,
                                                                                   tiny_decoder_dir):
    # Stage 1 of the self-critique recipe under LoRA: the next-token loss on the critique trains the
    # adapters alone (the LM head stays the pretrained one), and the export is the causal LM with
    # them merged, which continues a critique as the trained model does.
    pytest.importorskip("peft", reason="LoRA is the optional 'lora' extra; `make test` installs it")
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from lightning_critrm.layout.collate import PairCollator
    from lightning_critrm.model.losses import critique_lm_loss

    cfg = tiny_config(tmp_path, tiny_decoder_dir, pairs_file)
    config = yaml.safe_load(cfg.read_text())
    config["model"].update(lr=1e-2, critique_lm_coef=1.0, pairwise_coef=0.0,
                           lora={"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]})
    cfg.write_text(yaml.safe_dump(config))
    cli = main(["fit", "--config", str(cfg), "--trainer.max_steps", "8"])
    out = tmp_path / "writer"
    main(["export", "--config", str(cfg), "--ckpt_path", "last", "--out", str(out),
          "--reward_stats", "false"])
    assert not any("lora" in name for name in load_file(out / "model.safetensors"))

    features = [{**cli.datamodule.val_dataset[i], "index": i} for i in range(4)]
    batch = PairCollator(cli.datamodule.pad_token_id)(features)
    with torch.no_grad():
        _, logits = cli.model.eval().reward_model(batch, critique_logits=True)
    trained = critique_lm_loss(logits, batch.critique_labels).item()

    def by_hand(folder) -> float:  # the folder's causal LM on each critique's tokens, whole sequences
        lm = AutoModelForCausalLM.from_pretrained(folder).eval()
        total, count = 0.0, 0
        for f in features:
            for side in ("chosen", "rejected"):
                ids, (start, end) = f[f"{side}_input_ids"], f[f"{side}_critique_span"]
                with torch.no_grad():
                    out_logits = lm(torch.tensor([ids])).logits[0]
                total += torch.nn.functional.cross_entropy(
                    out_logits[start - 1 : end - 1], torch.tensor(ids[start:end]), reduction="sum").item()
                count += end - start
        return total / count

    assert by_hand(out) == pytest.approx(trained, rel=1e-4)
    assert trained < by_hand(tiny_decoder_dir) - 0.1  # the adapters learned the critiques
    pretrained = AutoModelForCausalLM.from_pretrained(tiny_decoder_dir).lm_head.weight
    exported = AutoModelForCausalLM.from_pretrained(out).lm_head.weight
    torch.testing.assert_close(exported[: len(pretrained)], pretrained, rtol=0, atol=0)


def test_the_recipe_records_the_critic_that_keys_the_critiques_and_nothing_of_where_it_ran(tmp_path,
        pairs_file, tiny_decoder_dir):
    from lightning_critrm.critique import CriticConfig, Endpoint
    from lightning_critrm.data import PreferenceDataModule
    from lightning_critrm.model import CritiqueRewardModel
    from lightning_critrm.model.export import recipe_of

    critic = CriticConfig(backend="openai", model="served-critic",
                          endpoint=Endpoint(base_url="http://10.0.0.1:8000/v1", api_key_env="SECRET_KEY_VAR"))
    data = PreferenceDataModule(source=str(pairs_file), backbone=tiny_decoder_dir, critiques="generate",
                                critic=critic,
                                cache_dir=str(tmp_path / "cache"))
    recipe = recipe_of(CritiqueRewardModel(backbone=tiny_decoder_dir), data)
    assert recipe["critic"]["model"] == "served-critic" and recipe["critic"]["template"] == critic.template
    assert recipe["critic"]["sampling"]["max_new_tokens"] == critic.sampling.max_new_tokens
    text = json.dumps(recipe)
    assert "10.0.0.1" not in text and "SECRET_KEY_VAR" not in text and "endpoint" not in text


def test_the_model_card_says_what_the_model_reads():
    from lightning_critrm.model.export import model_card
    from lightning_critrm.prompts import CritiqueFormat

    recipe = {"backbone": "b", "critiques": "none", "max_length": 256,
              "critique_template": CritiqueFormat().template,
              "critique_template_version": "v", "critic": None, "reward_stats": None}
    plain = model_card(recipe, "LlamaForSequenceClassification")
    assert "without critiques" in plain and "critique" not in plain.replace("without critiques", "")
    reading = model_card({**recipe, "critiques": "columns",
                          "reward_stats": {"mean": 0.5, "std": 2.0, "sequences": 8}},
                         "LlamaForSequenceClassification")
    assert "reading a critique of each completion" in reading
    assert '{"role": "critique", "content": critique}' in reading
    assert json.dumps(CritiqueFormat().template) in reading
    assert "mean 0.5000" in reading
    assert "deviation 2.0000" in reading


def test_export_without_reward_stats_reads_no_data(tmp_path, pairs_file, tiny_decoder_dir):
    cfg = tiny_config(tmp_path, tiny_decoder_dir, pairs_file)
    main(["fit", "--config", str(cfg), "--trainer.max_steps", "1"])
    pairs_file.unlink()  # the data is gone: only the checkpoint and the config remain
    out = tmp_path / "exported"
    main(["export", "--config", str(cfg), "--ckpt_path", "last", "--out", str(out), "--reward_stats",
          "false"])
    assert json.loads((out / "config.json").read_text())["lightning_critrm"]["reward_stats"] is None
