import pytest

from lightning_critrm.records import ColumnMap, RecordError, normalize_row

COLS = ColumnMap()


def test_plain_strings_become_a_user_prompt():
    pair = normalize_row(
        {"prompt": "Hi?", "chosen": "A", "rejected": "B", "chosen_critique": "good",
         "rejected_critique": "bad"},
        COLS, "f.jsonl: line 1", with_critiques=True,
    )
    assert pair.prompt == ({"role": "user", "content": "Hi?"},)
    assert (pair.chosen, pair.rejected) == ("A", "B")
    assert (pair.chosen_critique, pair.rejected_critique) == ("good", "bad")


def test_conversational_rows_take_the_prompt_from_the_conversation():
    convo = [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}]
    row = {
        "chosen": convo + [{"role": "assistant", "content": "good"}],
        "rejected": convo + [{"role": "assistant", "content": "bad"}],
    }
    pair = normalize_row(row, COLS, "x", with_critiques=False)
    assert list(pair.prompt) == convo
    assert (pair.chosen, pair.rejected) == ("good", "bad")
    assert pair.chosen_critique is None


def test_conversational_completion_after_explicit_prompt():
    row = {
        "prompt": [{"role": "user", "content": "Q"}],
        "chosen": [{"role": "assistant", "content": "good"}],
        "rejected": [{"role": "assistant", "content": "bad"}],
    }
    pair = normalize_row(row, COLS, "x", with_critiques=False)
    assert pair.prompt == ({"role": "user", "content": "Q"},)


def test_renamed_columns_and_margin():
    cols = ColumnMap(prompt="q", chosen="a", rejected="b", margin="gap")
    pair = normalize_row({"q": "Q", "a": "A", "b": "B", "gap": 2}, cols, "x", with_critiques=False)
    assert pair.margin == 2.0


@pytest.mark.parametrize(
    "row, with_critiques, match",
    [
        ({"prompt": "Q", "rejected": "B"}, False, r"data.jsonl: line 7: field 'chosen': missing"),
        ({"prompt": "Q", "chosen": 3, "rejected": "B"}, False, r"line 7: field 'chosen': expected a string"),
        ({"prompt": "Q", "chosen": " ", "rejected": "B"}, False, r"field 'chosen': the completion is empty"),
        ({"prompt": "Q", "chosen": "A", "rejected": "B"}, True, r"field 'chosen_critique': missing"),
        (
            {"prompt": "Q", "chosen": "A", "rejected": "B", "chosen_critique": "c", "rejected_critique": ""},
            True,
            r"field 'rejected_critique': expected a non-empty",
        ),
        (
            {"prompt": "Q", "chosen": [{"role": "user", "content": "x"}], "rejected": "B"},
            False,
            r"field 'chosen': the conversation must end with an assistant message",
        ),
        ({"chosen": "A", "rejected": "B"}, False, r"field 'prompt': missing"),
    ],
)
def test_bad_rows_name_file_row_and_field(row, with_critiques, match):
    with pytest.raises(RecordError, match=match):
        normalize_row(row, COLS, "data.jsonl: line 7", with_critiques)


def test_prompt_key_depends_on_prompt_only():
    a = normalize_row({"prompt": "Q", "chosen": "A", "rejected": "B"}, COLS, "x", False)
    b = normalize_row({"prompt": "Q", "chosen": "C", "rejected": "D"}, COLS, "x", False)
    c = normalize_row({"prompt": "Q2", "chosen": "A", "rejected": "B"}, COLS, "x", False)
    assert a.prompt_key() == b.prompt_key() != c.prompt_key()
