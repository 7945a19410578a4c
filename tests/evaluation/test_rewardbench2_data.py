import json

import pytest

from lightning_critrm.evaluation.rewardbench2_data import load_rewardbench2
from lightning_critrm.records import RecordError
from tests.conftest import REPO, write_jsonl

FIXTURE = REPO / "tests" / "fixtures" / "rewardbench2_rows.jsonl"


def test_the_fixture_in_the_official_layout_loads_every_subset():
    rows = load_rewardbench2(str(FIXTURE))
    assert [r.subset for r in rows] == ["Factuality", "Precise IF", "Math", "Safety", "Focus", "Ties", "Ties"]
    math_row = rows[2]
    assert math_row.completions[0] == "17 * 3 = 51."
    assert len(math_row.completions) == 4
    assert math_row.num_correct == 1
    tied = rows[-1]
    assert tied.id == "tied:7" and tied.num_correct == 3 and tied.completions[:3] == ("Mars.", "Venus.",
                                                                                      "Neptune.")
    assert [r.id for r in load_rewardbench2(str(FIXTURE), ["Ties"])] == ["ref:7", "tied:7"]


@pytest.mark.parametrize("change, message", [
    ({"chosen": "Jupiter."}, r"line 1: field 'chosen': expected a non-empty list of non-empty strings"),
    ({"num_correct": 2}, r"line 1: field 'num_correct': 2, but 'chosen' holds 1"),
    ({"total_completions": 9}, r"line 1: field 'total_completions': 9, but there are 3"),
    ({"subset": None}, r"line 1: field 'subset': missing"),
])
def test_bad_rows_name_the_line_and_field(tmp_path, change, message):
    row = json.loads(FIXTURE.read_text().splitlines()[5])
    path = write_jsonl(tmp_path / "rb2.jsonl", [{**row, **change}])
    with pytest.raises(RecordError, match=message):
        load_rewardbench2(str(path))


def test_an_unknown_subset_is_named():
    with pytest.raises(ValueError,
                       match=r"subsets \['Chat'\] are not in .*; it has: Factuality, Focus, Math"):
        load_rewardbench2(str(FIXTURE), ["Math", "Chat"])
