import json

import pytest

from lightning_critrm.errors import MissingInputError
from lightning_critrm.evaluation.rmb_data import load_rmb
from lightning_critrm.records import RecordError
from tests.conftest import REPO

# a folder in the layout of the official repository's RMB_dataset
FIXTURE = REPO / "tests" / "fixtures" / "rmb" / "RMB_dataset"
DISCUSSION = FIXTURE / "Pairwise_set" / "Helpfulness" / "Chat" / "Discussion.json"


def test_the_published_layout_loads_pairwise_and_best_of_n_items_with_their_conversations():
    rows = load_rmb(str(FIXTURE))
    assert [(r.kind, r.id, r.subset, len(r.answers)) for r in rows] == [
        ("bon", "401", "BoN_set/Harmlessness/multi", 3), ("bon", "402", "BoN_set/Harmlessness/multi", 2),
        ("bon", "301", "BoN_set/Helpfulness/Code/Data Management", 3),
        ("bon", "302", "BoN_set/Helpfulness/Code/Data Management", 3),
        ("pairwise", "201", "Pairwise_set/Harmlessness/S1", 2),
        ("pairwise", "101", "Pairwise_set/Helpfulness/Chat/Discussion", 2),
        ("pairwise", "102", "Pairwise_set/Helpfulness/Chat/Discussion", 2),
        ("pairwise", "103", "Pairwise_set/Helpfulness/Chat/Discussion", 2),
        ("pairwise", "104", "Pairwise_set/Helpfulness/Code/Data Management", 2)]  # files in sorted order
    multi = {r.id: r for r in rows}["102"]
    assert multi.prompt == ({"role": "user", "content": "Name a fruit."},
                            {"role": "assistant", "content": "An apple."},
                            {"role": "user", "content": "And another one?"})  # `language` dropped
    best = {r.id: r for r in rows}["302"]
    assert best.answers[:2] == ("A medium answer with a few details.", "Short.")
    assert best.answers[2].startswith("A long and careful answer")
    only = load_rmb(str(FIXTURE), ["BoN_set/Harmlessness/multi"])
    assert [r.id for r in only] == ["401", "402"]


def item(**change):
    return {**json.loads(DISCUSSION.read_text())[0], **change}


@pytest.mark.parametrize("raw, message", [
    (item(chosen="plain text"), r"row 0: field 'chosen': expected an object with a string 'answer'"),
    (item(reject=None), r"row 0: field 'reject': missing"),
    (item(category_path="BoN_set/Helpfulness/Chat/Discussion"),
     r"row 0: field 'category_path': 'BoN_set/Helpfulness/Chat/Discussion': a pair_uid item's path begins "
     r"with Pairwise_set/Helpfulness/ or Pairwise_set/Harmlessness/"),
    (item(conversation_input=[{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]),
     r"row 0: field 'conversation_input': the conversation must end with a user message"),
    (item(conversation_input=[]),
     r"row 0: field 'conversation_input': expected a non-empty list of messages"),
    ({k: v for k, v in item().items() if k != "pair_uid"}, r"row 0: field 'pair_uid': missing"),
    ({"bon_uid": "9", "conversation_input": [{"role": "user", "content": "q"}], "bon_best": {"answer": "a"},
      "loser_list": [], "category_path": "BoN_set/Harmlessness/S1"},
     r"row 0: field 'loser_list': expected a non-empty list of answers"),
    ({"bon_uid": "9", "conversation_input": [{"role": "user", "content": "q"}], "bon_best": {"answer": "a"},
      "loser_list": [{"answer": "b"}, {"llm_name": "x"}], "category_path": "BoN_set/Harmlessness/S1"},
     r"row 0: field 'loser_list\[1\]': expected an object with a string 'answer'"),
])
def test_bad_items_name_the_file_item_and_field(tmp_path, raw, message):
    path = tmp_path / "S1.json"
    path.write_text(json.dumps([raw]))
    with pytest.raises(RecordError, match=message) as error:
        load_rmb(str(path))
    assert str(path) in str(error.value)


def test_a_repeated_uid_is_an_error_but_a_pair_and_a_best_of_n_item_may_share_one(tmp_path):
    path = tmp_path / "S1.json"
    path.write_text(json.dumps([item(), item()]))
    with pytest.raises(RecordError, match=r"row 1: field 'pair_uid': 101 already appeared at .*row 0"):
        load_rmb(str(path))
    bon = {"bon_uid": "101", "conversation_input": [{"role": "user", "content": "q"}],
           "bon_best": {"answer": "a"}, "loser_list": [{"answer": "b"}],
           "category_path": "BoN_set/Harmlessness/S1"}
    path.write_text(json.dumps([item(), bon]))
    assert [r.kind for r in load_rmb(str(path))] == ["pairwise", "bon"]


def test_the_default_source_says_where_rmb_is_published(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MissingInputError, match=r"git clone https://github.com/Zhou-Zoey/RMB-Reward-Model-Benchmark"):
        load_rmb()
