"""Shared fixtures: tiny backbones and tokenizers built in-process, never downloaded."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

# Set before transformers/datasets are imported anywhere: tests never touch a hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LIGHTNING_CRITRM_SHARED", REPO.parent / "shared"))
MTBENCH_PAIRS = SHARED / "data" / "critiques" / "mtbench_vicuna_gpt4_critique_pairs.jsonl"

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CORPUS = [
    "What is 12 + 30? The answer is 42. The response is correct. The answer is wrong.",
    "Instruction following: the response answers the question. Correctness: correct, wrong.",
    "user assistant system critique [Critique of the response] [End of critique]",
    "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 .,;:!?()[]{}<>+-*/=_'\"\n",
]


def build_chat_tokenizer(bos: bool = False):
    """A byte-level BPE tokenizer with ChatML specials; ``bos=True`` adds a BOS like Llama's."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|pad|>", "<|im_start|>", "<|im_end|>", "<s>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CORPUS * 4, trainer=trainer)
    kwargs = {}
    if bos:
        bos_id = tok.token_to_id("<s>")
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", bos_id)])
        kwargs["bos_token"] = "<s>"
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|pad|>", **kwargs
    )
    fast.chat_template = CHATML
    return fast


def build_word_tokenizer():
    """A BERT-style WordPiece tokenizer ([CLS] text [SEP]) with no chat template."""
    from transformers import BertTokenizer

    words = sorted({w.strip(".,;:!?()[]") .lower() for line in CORPUS for w in line.split()} - {""})
    chars = list("abcdefghijklmnopqrstuvwxyz0123456789.,;:!?()[]{}<>+-*/=_'\"")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *[f"##{c}" for c in chars], *words]
    return BertTokenizer(vocab={token: i for i, token in enumerate(dict.fromkeys(vocab))})


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    """Every test run caches backbones and tokenized data in its own folder."""
    path = tmp_path_factory.mktemp("lccache")
    old = os.environ.get("LIGHTNING_CRITRM_CACHE")
    os.environ["LIGHTNING_CRITRM_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("LIGHTNING_CRITRM_CACHE", None)
    else:
        os.environ["LIGHTNING_CRITRM_CACHE"] = old


@pytest.fixture(scope="session")
def chat_tokenizer():
    return build_chat_tokenizer()


@pytest.fixture(scope="session")
def tiny_decoder_dir(tmp_path_factory, chat_tokenizer) -> str:
    """2-layer Llama, width 64, head_dim 64, saved with save_pretrained."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny_llama")
    config = LlamaConfig(
        vocab_size=len(chat_tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=1,
        num_key_value_heads=1,
        head_dim=64,
        max_position_embeddings=1024,
        pad_token_id=chat_tokenizer.pad_token_id,
        eos_token_id=chat_tokenizer.eos_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    chat_tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory) -> str:
    """2-layer BERT, width 64, with a WordPiece tokenizer and no chat template."""
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny_bert")
    tok = build_word_tokenizer()
    config = BertConfig(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=1, max_position_embeddings=512,
    )
    BertModel(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def arithmetic_rows(n: int = 24) -> list[dict]:
    """Pairs whose critique states the verdict, so a tiny model can learn them fast."""
    rows = []
    for i in range(n):
        a, b = 10 + i, 30 + 2 * i
        rows.append(
            {
                "prompt": f"What is {a} + {b}?",
                "chosen": f"The answer is {a + b}.",
                "rejected": f"The answer is {a + b + 1}.",
                "chosen_critique": "Correctness: correct.",
                "rejected_critique": "Correctness: wrong.",
            }
        )
    return rows


@pytest.fixture
def pairs_file(tmp_path) -> Path:
    return write_jsonl(tmp_path / "pairs.jsonl", arithmetic_rows())
