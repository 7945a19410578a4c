import json

import pytest

from lightning_critrm.evaluation.rewardbench_data import load_rewardbench
from lightning_critrm.records import RecordError
from tests.conftest import SHARED, write_jsonl

RB_PARTIAL = SHARED / "data" / "rewardbench" / "rewardbench_filtered_partial.jsonl"


def rb(i, subset="hep-go"):
    return {"id": i, "prompt": f"p{i}", "chosen": "good", "rejected": "bad", "subset": subset}


def test_loads_rows_and_filters_subsets(tmp_path):
    path = write_jsonl(tmp_path / "rb.jsonl", [rb(1), rb(2, "llmbar-natural"), rb(3)])
    rows = load_rewardbench(str(path))
    assert [r.id for r in rows] == ["1", "2", "3"] and rows[0].prompt == ({"role": "user", "content": "p1"},)
    assert [r.id for r in load_rewardbench(str(path), subsets=["llmbar-natural"])] == ["2"]


def test_errors_name_file_row_and_field(tmp_path):
    path = write_jsonl(tmp_path / "rb.jsonl", [rb(1), {k: v for k, v in rb(2).items() if k != "subset"}])
    with pytest.raises(RecordError, match=r"rb.jsonl: line 2: field 'subset': missing"):
        load_rewardbench(str(path))
    path.write_text(json.dumps(rb(1)) + "\n" + json.dumps(rb(1)) + "\n")
    with pytest.raises(RecordError, match=r"line 2: field 'id': 1 already appeared at .*line 1"):
        load_rewardbench(str(path))


@pytest.mark.skipif(not RB_PARTIAL.exists(), reason=f"shared RewardBench rows not found at {RB_PARTIAL}")
def test_shared_partial_rewardbench_has_its_official_rows():
    rows = load_rewardbench(str(RB_PARTIAL))
    assert len(rows) == 1403
    counts = {}
    for r in rows:
        counts[r.subset] = counts.get(r.subset, 0) + 1
    assert counts["llmbar-natural"] == 100 and counts["hep-python"] == 164 and len(counts) == 11


def test_a_name_that_is_no_local_path_nor_a_readable_hub_set_says_both(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf"))
    with pytest.raises(FileNotFoundError, match=r"^rb/set:raw: no such local file, glob or folder .*, nor a "
                                                r"hub dataset"):
        load_rewardbench("rb/set:raw")
