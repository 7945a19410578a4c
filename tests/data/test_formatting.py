"""Formatting and truncation, checked against hand-counted tokens.

``CharTokenizer`` maps each character to one token, so every length below can be counted by eye.
"""

import pytest

from lightning_critrm.data.formatting import SequenceFormatter
from lightning_critrm.prompts import CritiqueFormat

EOS = 1


class CharTokenizer:
    """One token per character; EOS id 1; an optional BOS (id 2) prepended by add_special_tokens."""

    name_or_path = "char"
    eos_token_id = EOS
    eos_token = "#"

    def __init__(self, chat_template=True, bos=False):
        self.chat_template = "P:{p}|A:" if chat_template else None
        self.bos = bos
        self.bos_token = "^" if bos else None

    def __call__(self, text, add_special_tokens=True):
        ids = [EOS if ch == "#" else (2 if ch == "^" else ord(ch)) for ch in text]
        if add_special_tokens and self.bos:
            ids = [2] + ids
        return {"input_ids": ids}

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False):
        # "P:<prompt>|A:" then "<completion>#" with a trailing newline, like ChatML's end of turn.
        text = ("^" if self.bos else "") + f"P:{messages[0]['content']}|A:"
        if len(messages) > 1:
            text += messages[1]["content"] + "#\n"
        return text

    def decode(self, ids):
        return "".join("#" if i == EOS else ("^" if i == 2 else chr(i)) for i in ids)


PROMPT = [{"role": "user", "content": "abcdef"}]
CRITIQUE = CritiqueFormat(template="[{critique}]", version="t")


def text_of(formatter, completion="xyz", critique="ok!", prompt=PROMPT):
    enc = formatter.encode(prompt, completion, critique)
    return formatter.tokenizer.decode(enc.input_ids), enc.truncated


def test_layout_prompt_completion_critique_end():
    f = SequenceFormatter(CharTokenizer(), max_length=100, critique_format=CRITIQUE)
    assert text_of(f) == ("P:abcdef|A:xyz#[ok!]#", False)


def test_without_critiques_eos_is_not_doubled():
    f = SequenceFormatter(CharTokenizer(), max_length=100, critique_format=None)
    assert text_of(f) == ("P:abcdef|A:xyz#", False)


def test_truncation_cuts_prompt_from_the_left_first():
    # Full text "P:abcdef|A:xyz#[ok!]#" is 21 tokens; at 17 the first 4 prompt tokens go.
    f = SequenceFormatter(CharTokenizer(), max_length=17, critique_format=CRITIQUE)
    assert text_of(f) == ("cdef|A:xyz#[ok!]#", True)


def test_truncation_then_cuts_the_critique_end_then_the_completion_end():
    f = SequenceFormatter(CharTokenizer(), max_length=7, critique_format=CRITIQUE)
    # Prompt (11 tokens) gone, critique "[ok!]" loses 3 -> "[o", EOS appended.
    assert text_of(f) == ("xyz#[o#", True)
    f = SequenceFormatter(CharTokenizer(), max_length=4, critique_format=CRITIQUE)
    # Critique gone too, completion "xyz#" loses 1 -> "xyz", EOS forced last.
    assert text_of(f) == ("xyz#", True)
    f = SequenceFormatter(CharTokenizer(), max_length=5, critique_format=CRITIQUE)
    assert text_of(f, completion="abcdefgh") == ("abcd#", True)


def test_eos_is_last_for_every_length():
    for max_length in range(4, 30):
        f = SequenceFormatter(CharTokenizer(), max_length=max_length, critique_format=CRITIQUE)
        ids = f.encode(PROMPT, "a long completion", "a long critique").input_ids
        assert ids[-1] == EOS and len(ids) <= max_length


def test_no_double_bos_when_the_template_writes_it():
    f = SequenceFormatter(CharTokenizer(bos=True), max_length=100, critique_format=None)
    ids = f.encode(PROMPT, "xyz", None).input_ids
    assert ids.count(2) == 1 and ids[0] == 2


def test_bos_added_when_the_template_does_not_write_it():
    tok = CharTokenizer(bos=True)
    tok.apply_chat_template = lambda m, tokenize=False, add_generation_prompt=False: (
        f"P:{m[0]['content']}|A:" + (m[1]["content"] + "#\n" if len(m) > 1 else "")
    )
    f = SequenceFormatter(tok, max_length=100, critique_format=None)
    assert f.encode(PROMPT, "xyz", None).input_ids == [2, *map(ord, "P:abcdef|A:xyz"), EOS]


def test_critique_required_when_critiques_are_on():
    f = SequenceFormatter(CharTokenizer(), max_length=100, critique_format=CRITIQUE)
    with pytest.raises(ValueError, match="has none"):
        f.encode(PROMPT, "xyz", None)


def test_real_chat_template_places_the_critique_after_the_end_of_turn(chat_tokenizer):
    fmt = CritiqueFormat()
    f = SequenceFormatter(chat_tokenizer, max_length=512, critique_format=fmt)
    text = f.render_text(PROMPT, "The answer is 42.", "Correctness: correct.")
    assert text == (
        "<|im_start|>user\nabcdef<|im_end|>\n<|im_start|>assistant\nThe answer is 42.<|im_end|>"
        "\n\n[Critique of the response]\nCorrectness: correct.\n[End of critique]<|im_end|>"
    )


def test_encoder_tokenizer_is_wrapped_in_cls_and_sep(tiny_encoder_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_encoder_dir)
    f = SequenceFormatter(tok, max_length=12, critique_format=CritiqueFormat())
    ids = f.encode(PROMPT, "the answer is 42", "correct").input_ids
    assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
    assert ids.count(tok.cls_token_id) == 1 and ids.count(tok.sep_token_id) == 1
    assert len(ids) == 12
