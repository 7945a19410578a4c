"""Formatting and truncation, checked against hand-counted tokens.

``CharTokenizer`` maps each character to one token, so every length below can be counted by eye.
"""

import pytest

from lightning_critrm.data.formatting import SequenceFormatter
from lightning_critrm.prompts import CritiqueFormat

EOS = 1


class CharTokenizer:
    """One token per character; EOS ``#`` (id 1), BOS ``^`` (id 2). Its chat template writes
    ``P:<prompt>|A:`` then ``<completion>#`` and a trailing newline, like ChatML's end of turn; it
    renders templates with transformers' own Jinja environment, as a real tokenizer does."""

    name_or_path = "char"
    eos_token_id = EOS
    eos_token = "#"
    cls_token_id = None

    def __init__(self, chat_template=True, bos=False):
        self.chat_template = (
            ("^" if bos else "") + "{% for m in messages %}{% if m['role'] == 'user' %}P:{{ m['content'] "
            "}}|A:{% else %}{{ m['content'] }}{{ '#\\n' }}{% endif %}{% endfor %}"
        ) if chat_template else None
        self.bos = bos
        self.bos_token = "^" if bos else None
        self.bos_token_id = 2 if bos else None

    def __call__(self, text, add_special_tokens=True):
        ids = [EOS if ch == "#" else (2 if ch == "^" else ord(ch)) for ch in text]
        if add_special_tokens and self.bos:
            ids = [2] + ids
        return {"input_ids": ids}

    def apply_chat_template(self, messages, chat_template=None, tokenize=False, add_generation_prompt=False):
        from transformers.utils.chat_template_utils import _compile_jinja_template

        template = _compile_jinja_template(chat_template or self.chat_template)
        return template.render(messages=messages, add_generation_prompt=add_generation_prompt)

    def decode(self, ids):
        return "".join("#" if i == EOS else ("^" if i == 2 else chr(i)) for i in ids)


PROMPT = [{"role": "user", "content": "abcdef"}]
CRITIQUE = CritiqueFormat(template="[{critique}]", version="t")


def text_of(formatter, completion="xyz", critique="ok!", prompt=PROMPT):
    enc = formatter.encode(prompt, completion, critique)
    return formatter.tokenizer.decode(enc.input_ids), enc.truncated


def test_layout_prompt_completion_critique_end_of_turn():
    f = SequenceFormatter(CharTokenizer(), max_length=100, critique_format=CRITIQUE)
    assert text_of(f) == ("P:abcdef|A:xyz[ok!]#\n", False)


def test_without_critiques_the_text_is_the_templates():
    f = SequenceFormatter(CharTokenizer(), max_length=100, critique_format=None)
    assert text_of(f) == ("P:abcdef|A:xyz#\n", False)


def test_truncation_cuts_prompt_from_the_left_first():
    # Full text "P:abcdef|A:xyz[ok!]#\n" is 21 tokens; at 17 the first 4 prompt tokens go.
    f = SequenceFormatter(CharTokenizer(), max_length=17, critique_format=CRITIQUE)
    assert text_of(f) == ("cdef|A:xyz[ok!]#\n", True)


def test_truncation_then_cuts_the_critique_end_then_the_completion_end():
    f = SequenceFormatter(CharTokenizer(), max_length=7, critique_format=CRITIQUE)
    # Prompt (11 tokens) gone, critique "[ok!]" loses 3 -> "[o"; the end of turn "#\n" stays.
    assert text_of(f) == ("xyz[o#\n", True)
    f = SequenceFormatter(CharTokenizer(), max_length=4, critique_format=CRITIQUE)
    # Critique gone too, completion "xyz" loses 1.
    assert text_of(f) == ("xy#\n", True)
    f = SequenceFormatter(CharTokenizer(), max_length=5, critique_format=CRITIQUE)
    assert text_of(f, completion="abcdefgh") == ("abc#\n", True)


def test_the_end_of_turn_is_last_for_every_length():
    for max_length in range(4, 30):
        f = SequenceFormatter(CharTokenizer(), max_length=max_length, critique_format=CRITIQUE)
        ids = f.encode(PROMPT, "a long completion", "a long critique").input_ids
        assert ids[-2:] == [EOS, ord("\n")] and len(ids) <= max_length


def test_a_bos_written_by_the_template_is_written_once_and_survives_truncation():
    f = SequenceFormatter(CharTokenizer(bos=True), max_length=100, critique_format=None)
    assert f.encode(PROMPT, "xyz", None).input_ids == [2, *map(ord, "P:abcdef|A:xyz"), EOS, ord("\n")]
    f = SequenceFormatter(CharTokenizer(bos=True), max_length=8, critique_format=None)
    assert text_of(f) == ("^A:xyz#\n", True)  # BOS, the prompt's last 2, "xyz", "#\\n"


def test_a_tokenizer_without_a_chat_template_gets_a_plain_one_with_its_specials():
    f = SequenceFormatter(CharTokenizer(chat_template=False, bos=True), max_length=100,
                          critique_format=CRITIQUE)
    assert text_of(f) == ("^User: abcdef\n\nAssistant: xyz[ok!]#", False)
    assert f.render(PROMPT, add_generation_prompt=True) == "^User: abcdef\n\nAssistant: "


def test_critique_required_when_critiques_are_on():
    f = SequenceFormatter(CharTokenizer(), max_length=100, critique_format=CRITIQUE)
    with pytest.raises(ValueError, match="has none"):
        f.encode(PROMPT, "xyz", None)


def test_real_chat_template_places_the_critique_inside_the_assistant_turn(chat_tokenizer):
    f = SequenceFormatter(chat_tokenizer, max_length=512, critique_format=CritiqueFormat())
    text = chat_tokenizer.decode(f.encode(PROMPT, "The answer is 42.", "Correctness: correct.").input_ids)
    assert text == (
        "<|im_start|>user\nabcdef<|im_end|>\n<|im_start|>assistant\nThe answer is 42."
        "\n\n[Critique of the response]\nCorrectness: correct.\n[End of critique]<|im_end|>\n"
    )


@pytest.mark.parametrize("critique", [None, "Correctness: correct."])
def test_the_ids_are_apply_chat_template_of_the_conversation_with_the_formatters_template(chat_tokenizer,
                                                                                          critique):
    """What TRL, OpenRLHF and RewardBench's package compute: the formatter changes nothing."""
    fmt = CritiqueFormat() if critique else None
    f = SequenceFormatter(chat_tokenizer, max_length=512, critique_format=fmt)
    messages = [*PROMPT, {"role": "assistant", "content": "The answer is 42."}]
    if critique:
        messages.append({"role": "critique", "content": critique})
    expected = chat_tokenizer.apply_chat_template(messages, chat_template=f.chat_template, tokenize=True,
                                                  return_dict=False)
    assert f.encode(PROMPT, "The answer is 42.", critique).input_ids == expected


def test_a_template_that_trims_the_turn_still_keeps_its_end_of_turn_when_cut(chat_tokenizer):
    import copy

    tok = copy.deepcopy(chat_tokenizer)
    tok.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] | trim }}<|im_end|>{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    f = SequenceFormatter(tok, max_length=12, critique_format=CritiqueFormat())
    enc = f.encode(PROMPT, "  The answer is 42.  ", "Correctness: correct.")
    assert enc.truncated and len(enc.input_ids) == 12 and enc.input_ids[-1] == tok.eos_token_id
    assert tok.decode(enc.input_ids).startswith("The answer is 42.")


def test_encoder_tokenizer_is_wrapped_in_cls_and_sep(tiny_encoder_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_encoder_dir)
    f = SequenceFormatter(tok, max_length=12, critique_format=CritiqueFormat())
    ids = f.encode(PROMPT, "the answer is 42", "correct").input_ids
    assert f.encode(PROMPT, "the answer is 42", "correct").truncated
    assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
    assert ids.count(tok.cls_token_id) == 1 and ids.count(tok.sep_token_id) == 1
    assert len(ids) == 12


def test_the_critique_span_covers_the_critique_blocks_tokens_whole_or_cut():
    f = SequenceFormatter(CharTokenizer(), max_length=100, critique_format=CRITIQUE)
    ids = f.encode(PROMPT, "xyz", "ok!").input_ids  # "P:abcdef|A:xyz[ok!]#\n"
    start, end = f.critique_span(PROMPT, "xyz", "ok!")
    assert (start, end) == (14, 19) and f.tokenizer.decode(ids[start:end]) == "[ok!]"
    cut = SequenceFormatter(CharTokenizer(), max_length=7, critique_format=CRITIQUE)
    assert cut.critique_span(PROMPT, "xyz", "ok!") == (3, 5)  # "xyz[o#\n": the block's first two
    gone = SequenceFormatter(CharTokenizer(), max_length=4, critique_format=CRITIQUE)
    assert gone.critique_span(PROMPT, "xyz", "ok!") is None  # "xy#\n": no critique left
    assert SequenceFormatter(CharTokenizer(), max_length=100, critique_format=None).critique_span(
        PROMPT, "xyz", None) is None


def test_the_critique_span_of_a_real_template_decodes_to_the_critique_block(chat_tokenizer):
    f = SequenceFormatter(chat_tokenizer, max_length=512, critique_format=CritiqueFormat())
    ids = f.encode(PROMPT, "The answer is 42.", "Correctness: correct.").input_ids
    start, end = f.critique_span(PROMPT, "The answer is 42.", "Correctness: correct.")
    assert chat_tokenizer.decode(ids[start:end]) == (
        "\n\n[Critique of the response]\nCorrectness: correct.\n[End of critique]")
    assert chat_tokenizer.decode(ids[end:]) == "<|im_end|>\n"
