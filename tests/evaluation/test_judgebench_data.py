import json

import pytest

from lightning_critrm.evaluation.judgebench_data import load_judgebench
from lightning_critrm.records import RecordError
from tests.conftest import REPO, write_jsonl

# in the layout of the official data/dataset=judgebench,response_model=*.jsonl
FIXTURE = REPO / "tests" / "fixtures" / "judgebench_rows.jsonl"


def test_the_fixture_in_the_published_layout_loads_with_categories():
    rows = load_judgebench(str(FIXTURE))
    assert [(r.id, r.subset, r.source, r.label) for r in rows] == [
        ("p-law", "knowledge", "mmlu-pro-law", "A>B"),
        ("p-chem", "knowledge", "mmlu-pro-chemistry", "B>A"),
        ("p-reason", "reasoning", "livebench-reasoning", "A>B"),
        ("p-math", "math", "livebench-math", "B>A"),
        ("p-code", "coding", "livecodebench", "A>B")]
    assert rows[3].prompt == ({"role": "user", "content": "What is 7 * 8?"},)
    assert rows[4].response_a == "def f(x): return x * x"
    assert rows[4].response_b.startswith("def f(x): return x + x")
    assert [r.id for r in load_judgebench(str(FIXTURE), ["knowledge"])] == ["p-law", "p-chem"]


@pytest.mark.parametrize("change, message", [
    ({"label": "A<B"}, r"line 1: field 'label': 'A<B', expected one of A>B, B>A, A=B"),
    ({"source": "gsm8k"}, r"line 1: field 'source': 'gsm8k' is in no JudgeBench category"),
    ({"response_B": None}, r"line 1: field 'response_B': missing"),
    ({"question": 3}, r"line 1: field 'question': expected a string, got int"),
])
def test_bad_pairs_name_the_file_line_and_field(tmp_path, change, message):
    row = json.loads(FIXTURE.read_text().splitlines()[0])
    path = write_jsonl(tmp_path / "jb.jsonl", [{**row, **change}])
    with pytest.raises(RecordError, match=message):
        load_judgebench(str(path))


def test_a_repeated_pair_id_is_an_error(tmp_path):
    row = json.loads(FIXTURE.read_text().splitlines()[0])
    path = write_jsonl(tmp_path / "jb.jsonl", [row, row])
    with pytest.raises(RecordError, match=r"line 2: field 'pair_id': p-law already appeared"):
        load_judgebench(str(path))
