import json

import pytest

from lightning_critrm.data.arithmetic import arithmetic_pairs
from lightning_critrm.data.sources import read_pairs, source_fingerprint
from lightning_critrm.records import ColumnMap, RecordError

ROW = {"prompt": "Q", "chosen": "A", "rejected": "B", "chosen_critique": "c", "rejected_critique": "r"}


def test_jsonl_json_and_parquet_read_the_same(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [ROW, dict(ROW, prompt="Q2")]
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    (tmp_path / "b.json").write_text(json.dumps({"data": rows}))
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "c.parquet")
    got = [read_pairs(str(tmp_path / n), ColumnMap(), True).pairs for n in ("a.jsonl", "b.json", "c.parquet")]
    assert got[0] == got[1] == got[2] and len(got[0]) == 2


def test_bad_json_line_is_named(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(ROW) + "\n{not json\n")
    with pytest.raises(RecordError, match=r"bad.jsonl: line 2: not valid JSON"):
        read_pairs(str(path), ColumnMap(), True)


def test_bad_field_names_file_line_and_field(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(ROW) + "\n" + json.dumps(dict(ROW, rejected=None)) + "\n")
    with pytest.raises(RecordError, match=r"d.jsonl: line 2: field 'rejected'"):
        read_pairs(str(path), ColumnMap(), True)


def test_pairs_with_identical_completions_are_left_out_by_name_whatever_their_critiques(tmp_path):
    path = tmp_path / "d.jsonl"
    same = dict(ROW, rejected="A", rejected_critique="a different critique")
    path.write_text("\n".join(json.dumps(r) for r in (ROW, same, dict(ROW, prompt="Q2"), same)) + "\n")
    read = read_pairs(str(path), ColumnMap(), True)
    assert [p.prompt[0]["content"] for p in read.pairs] == ["Q", "Q2"]
    assert read.identical == [f"{path}: line 2", f"{path}: line 4"] and read.skipped == []
    only = tmp_path / "only.jsonl"
    only.write_text(json.dumps(same) + "\n")
    with pytest.raises(RecordError, match=r"only.jsonl: no usable preference pair \(1 with identical"):
        read_pairs(str(only), ColumnMap(), True)


def test_bad_rows_are_skipped_by_name_on_request(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(json.dumps(ROW) + "\n{not json\n")
    read = read_pairs(str(path), ColumnMap(), True, on_bad_row="skip")
    assert len(read.pairs) == 1 and read.identical == []
    assert read.skipped == [
        f"{path}: line 2: not valid JSON (Expecting property name enclosed in double quotes at column 2)"]


def test_missing_file_says_where_it_looked(tmp_path):
    with pytest.raises(FileNotFoundError, match="no data file matches"):
        read_pairs(str(tmp_path / "nope.jsonl"), ColumnMap(), True)


def test_fingerprint_follows_file_content(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps(ROW) + "\n")
    before = source_fingerprint(str(path), "train")
    path.write_text(json.dumps(ROW) + "\n" + json.dumps(ROW) + "\n")
    assert source_fingerprint(str(path), "train") != before


def test_builtin_arithmetic_is_deterministic_and_labelled_right():
    pairs = arithmetic_pairs(50, seed=0)
    assert pairs == arithmetic_pairs(50, seed=0) != arithmetic_pairs(50, seed=1)
    assert len({p.prompt_key() for p in pairs}) == 50
    for p in pairs:
        assert "is correct" in p.chosen_critique and "is wrong" in p.rejected_critique
        assert p.chosen != p.rejected
    assert read_pairs("builtin:arithmetic", ColumnMap(), True).pairs[:50] == arithmetic_pairs(50, seed=0)


def test_builtin_size_suffix_takes_a_prefix_of_the_same_sequence():
    assert read_pairs("builtin:arithmetic:7", ColumnMap(), True).pairs == arithmetic_pairs(7, seed=0)
    with pytest.raises(ValueError, match="whole number"):
        read_pairs("builtin:arithmetic:x", ColumnMap(), True)
    with pytest.raises(ValueError, match="unknown built-in"):
        read_pairs("builtin:nope", ColumnMap(), True)
