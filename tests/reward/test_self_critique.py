"""A reward model that writes its own critiques, exported and put to work with no critic configured."""

import json

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from lightning_critrm.cli import main
from lightning_critrm.critique import CriticConfig
from lightning_critrm.critique.store import CritiqueStore
from lightning_critrm.layout.batch import RewardBatch
from lightning_critrm.prompts import CRITIQUE_ROLE
from lightning_critrm.reward.exported import ExportedRewardModel
from tests.conftest import write_jsonl
from tests.critique.test_vllm_backend import needs_vllm, run_critique
from tests.test_cli import tiny_config


def written_by_hand(folder, prompt, completion, max_new_tokens) -> str:
    """The critique the folder's causal LM writes, greedy, computed here without the package: the
    chat template's text up to the critique, continued until the block closes."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    lm = AutoModelForCausalLM.from_pretrained(folder).eval()
    mark = "\x00mark\x00"
    text = tokenizer.apply_chat_template(
        [*prompt, {"role": "assistant", "content": completion}, {"role": CRITIQUE_ROLE, "content": mark}],
        tokenize=False)
    ids = tokenizer(text[: text.index(mark)], add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = lm.generate(ids, max_new_tokens=max_new_tokens, do_sample=False,
                          pad_token_id=tokenizer.pad_token_id)[0, ids.shape[1]:].tolist()
    end = next((k for k, t in enumerate(out) if t == tokenizer.eos_token_id), len(out))
    return tokenizer.decode(out[:end], skip_special_tokens=True).split("[End of critique]")[0].strip()


@pytest.fixture
def writer_export(tmp_path, pairs_file, tiny_decoder_dir):
    """A tiny model trained to write the data's critiques and to score with them, exported."""
    cfg = tiny_config(tmp_path, tiny_decoder_dir, pairs_file)
    writer = ["--model.critique_lm_coef", "1.0"]
    cli = main(["fit", "--config", str(cfg), "--trainer.max_steps", "40", "--model.lr", "3e-3", *writer,
                "--trainer.val_check_interval", "40"])
    out = tmp_path / "exported"
    main(["export", "--config", str(cfg), *writer, "--ckpt_path", "last", "--out", str(out),
          "--reward_stats", "false"])
    return cli, out


def test_an_export_that_writes_its_critiques_scores_with_the_critique_it_wrote(tmp_path, writer_export):
    cli, out = writer_export
    files = {p.name for p in out.iterdir()}
    assert {"model.safetensors", "reward_head", "README.md"} <= files
    # vLLM loads every top-level safetensors file into the causal LM: the head is not one of them.
    assert {p.name for p in out.glob("*.safetensors")} == {"model.safetensors"}
    assert set(load_file(out / "reward_head" / "reward_head.safetensors")) == {"score.weight"}
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]  # vLLM and transformers generate from it
    assert config["lightning_critrm"]["writes_critiques"]
    assert "lm_head.weight" in load_file(out / "model.safetensors")

    # No critic is configured anywhere: the folder is its own.
    model = ExportedRewardModel(out, cache_dir=tmp_path / "scoring", critic_backend="transformers")
    items = [([{"role": "user", "content": "What is 12 + 34?"}], "The answer is 46."),
             ([{"role": "user", "content": "What is 12 + 34?"}], "The answer is 47.")]
    critiques = model.critiques(items, progress=False)
    max_new = config["lightning_critrm"]["critic"]["sampling"]["max_new_tokens"]
    assert critiques == [written_by_hand(out, p, c, max_new) for p, c in items]
    assert all(critiques)  # non-empty: an empty one would count as failed

    # The critique it wrote is the one in the text it scores: the trainer's model on that text.
    rewards = model.rewards(items, progress=False)
    formatter = cli.datamodule.formatter
    sequences = [formatter.encode(p, c, k).input_ids for (p, c), k in zip(items, critiques)]
    trained = cli.model.eval()
    with torch.no_grad():
        expected = trained(RewardBatch.padded(sequences, pad_token_id=cli.datamodule.pad_token_id))
    torch.testing.assert_close(torch.tensor(rewards), expected, atol=1e-4, rtol=1e-4)


def test_written_critiques_are_cached_under_the_models_fingerprint(tmp_path, writer_export):
    _, out = writer_export
    items = [([{"role": "user", "content": "What is 10 + 30?"}], "The answer is 40.")]
    model = ExportedRewardModel(out, cache_dir=tmp_path / "scoring", critic_backend="transformers")
    model.critiques(items, progress=False)
    store = model.critique_store()
    assert store.fill(items, require_cached=True, progress=False).generated == 0  # read back, not rewritten

    # Other weights in the same folder are another critic: their critiques are written anew.
    weights = load_file(out / "model.safetensors")
    save_file({k: v + 0.01 * torch.randn_like(v) for k, v in weights.items()}, str(out / "model.safetensors"),
              metadata={"format": "pt"})
    changed = ExportedRewardModel(out, cache_dir=tmp_path / "scoring", critic_backend="transformers")
    assert changed.critique_store().resolved.fingerprint != store.resolved.fingerprint
    with pytest.raises(Exception, match="are not in"):
        changed.critique_store().fill(items, require_cached=True, progress=False)


@needs_vllm
def test_vllm_continues_the_export_as_greedy_transformers_does(tmp_path, writer_export):
    # A real vLLM engine starts from the exported folder (the reward head beside the causal LM does
    # not stop it) and, continuing the critique block, writes the critique plain transformers does.
    _, out = writer_export
    recipe = json.loads((out / "config.json").read_text())["lightning_critrm"]
    critic = {"backend": "vllm", "model": str(out), "prompting": "continuation", "dtype": "float32",
              "template": recipe["critique_template"], "sampling": {"max_new_tokens": 24},
              "engine": {"enforce_eager": True, "max_model_len": recipe["max_length"]}}
    rows = [{"prompt": f"What is {a} + {b}?", "chosen": f"The answer is {a + b}.",
             "rejected": f"The answer is {a + b + 1}."} for a, b in ((12, 34), (7, 5))]
    config = {"model": {"backbone": str(out)},
              "data": {"source": str(write_jsonl(tmp_path / "pairs.jsonl", rows)),
                       "cache_dir": str(tmp_path / "cache"), "critiques": "generate", "critic": critic,
                       "critique_format": {"template": recipe["critique_template"]}}}
    path = tmp_path / "critique.yaml"
    path.write_text(yaml.safe_dump(config))
    done = run_critique(path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "4 requested, 0 already cached, 4 generated" in done.stdout

    items = [([{"role": "user", "content": r["prompt"]}], r[side])
             for r in rows for side in ("chosen", "rejected")]
    store = CritiqueStore.for_critic(CriticConfig.from_dict(critic), tmp_path / "cache")
    written = store.lookup(items)
    assert written == [written_by_hand(out, p, c, 24) for p, c in items]
    assert all(written)
