import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lightning_critrm.errors import InputError
from lightning_critrm.evaluation.ppe_data import correctness_sources, load_ppe_correctness, load_ppe_human
from lightning_critrm.records import RecordError
from tests.conftest import REPO

FIXTURE = REPO / "tests" / "fixtures" / "ppe"
HUMAN = FIXTURE / "PPE-Human-Preference-V1" / "test.jsonl"
MATH = FIXTURE / "PPE-MATH-Best-of-K" / "train.jsonl"


def as_hub_parquet(rows_file, folder):
    """``rows_file``'s rows as the hub publishes them: ``<folder>/data/<split>-00000-of-00001.parquet``."""
    rows = [json.loads(line) for line in rows_file.read_text().splitlines()]
    path = folder / "data" / f"{rows_file.stem}-00000-of-00001.parquet"
    path.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return folder


def test_human_votes_load_from_the_hubs_parquet_layout_without_ties(tmp_path):
    rows = load_ppe_human(str(as_hub_parquet(HUMAN, tmp_path / "PPE-Human-Preference-V1")))
    assert [(r.id, r.subset, r.winner, r.preferred, r.categories) for r in rows] == [
        ("q1", "English", "model_a", 0, ("hard_prompt",)), ("q2", "English", "model_b", 1, ("is_code",)),
        ("q3", "English", "model_b", 1, ("hard_prompt", "math_prompt")), ("q4", "Chinese", "model_a", 0, ()),
        ("q6", "German", "model_a", 0, ())]  # q5 and q7 are tie votes
    assert rows[0].prompt == ({"role": "user", "content": "Question q1: say yes."},)
    assert rows[0].responses == ("yes yes yes yes yes", "yes yes")
    assert [r.id for r in load_ppe_human(str(HUMAN), ["German", "Chinese"])] == ["q4", "q6"]
    with pytest.raises(InputError, match=r"subsets \['French'\] are not in"):
        load_ppe_human(str(HUMAN), ["French"])


def test_correctness_rows_load_from_a_folder_of_set_folders_in_the_hubs_layout(tmp_path):
    as_hub_parquet(MATH, tmp_path / "PPE-MATH-Best-of-K")
    as_hub_parquet(FIXTURE / "PPE-GPQA-Best-of-K" / "train.jsonl", tmp_path / "PPE-GPQA-Best-of-K")
    rows = load_ppe_correctness(str(tmp_path))
    assert [(r.subset, r.id, r.correct) for r in rows] == [
        ("math", "m1/gen-a", (True, False, True, False)), ("math", "m2/gen-a", (True, False, False, False)),
        ("gpqa", "g1/gen-b", (False, False, False, True)), ("gpqa", "g2/gen-b", (True, True, True, True))]
    assert rows[0].responses == ("yes yes yes yes", "yes yes yes", "yes yes", "yes")
    assert [r.subset for r in load_ppe_correctness(str(tmp_path), ["gpqa"])] == ["gpqa", "gpqa"]


def test_correctness_sources_name_every_set_on_the_hub_one_set_or_set_folders(tmp_path):
    assert correctness_sources("lmarena-ai") == {
        "mmlu_pro": "lmarena-ai/PPE-MMLU-Pro-Best-of-K", "math": "lmarena-ai/PPE-MATH-Best-of-K",
        "gpqa": "lmarena-ai/PPE-GPQA-Best-of-K", "ifeval": "lmarena-ai/PPE-IFEval-Best-of-K",
        "mbpp_plus": "lmarena-ai/PPE-MBPP-Plus-Best-of-K"}
    assert correctness_sources("lmarena-ai", ["math"]) == {"math": "lmarena-ai/PPE-MATH-Best-of-K"}
    assert correctness_sources("lmarena-ai/PPE-IFEval-Best-of-K:train") == {
        "ifeval": "lmarena-ai/PPE-IFEval-Best-of-K:train"}
    assert correctness_sources(str(MATH)) == {"math": str(MATH)}  # a file under the set's folder
    assert list(correctness_sources(str(FIXTURE))) == ["math", "gpqa"]
    with pytest.raises(InputError, match=r"subsets \['ifeval'\] are not in .*; it has: math, gpqa"):
        correctness_sources(str(FIXTURE), ["ifeval"])
    with pytest.raises(InputError, match=r"subsets \['chemistry'\]: expected some of mmlu_pro, math"):
        correctness_sources("lmarena-ai", ["chemistry"])
    with pytest.raises(InputError, match=r"holds no PPE correctness set: expected folders named"):
        correctness_sources(str(tmp_path))
    with pytest.raises(InputError, match=r"'someone/other-set': expected lmarena-ai"):
        correctness_sources("someone/other-set")


def first(path, **change):
    return {**json.loads(path.read_text().splitlines()[0]), **change}


@pytest.mark.parametrize("folder, raw, message", [
    ("PPE-Human-Preference-V1", first(HUMAN, winner=None), r"line 1: field 'winner': missing"),
    ("PPE-Human-Preference-V1", first(HUMAN, response_2=["a"]),
     r"line 1: field 'response_2': expected a string, got list"),
    ("PPE-Human-Preference-V1", first(HUMAN, hard_prompt="yes"),
     r"line 1: field 'hard_prompt': expected true or false, got 'yes'"),
    ("PPE-MATH-Best-of-K", first(MATH, scores=[]), r"line 1: field 'scores': expected a non-empty list"),
    ("PPE-MATH-Best-of-K", first(MATH, scores=[True, "no", True, False]),
     r"line 1: field 'scores': label 1 is 'no', expected true or false"),
    ("PPE-MATH-Best-of-K", first(MATH, scores=[True, False, True, False, True]),
     r"line 1 \(5 labels in 'scores'\): field 'response_5': missing"),
    ("PPE-MATH-Best-of-K", first(MATH, model_name=None), r"line 1: field 'model_name': missing"),
])
def test_bad_rows_name_the_file_row_and_field(tmp_path, folder, raw, message):
    path = tmp_path / folder / "rows.jsonl"
    path.parent.mkdir()
    path.write_text(json.dumps(raw) + "\n")
    load = load_ppe_human if folder.startswith("PPE-Human") else load_ppe_correctness
    with pytest.raises(RecordError, match=message) as error:
        load(str(path))
    assert str(path) in str(error.value)


def test_a_repeated_vote_or_row_is_an_error(tmp_path):
    path = tmp_path / "PPE-MATH-Best-of-K" / "rows.jsonl"
    path.parent.mkdir()
    path.write_text(json.dumps(first(MATH)) + "\n" + json.dumps(first(MATH)) + "\n"
                    + json.dumps(first(MATH, model_name="gen-z")) + "\n")
    repeated = r"line 2: field 'question_id, model_name': m1/gen-a already appeared"
    with pytest.raises(RecordError, match=repeated):
        load_ppe_correctness(str(path))
    votes = tmp_path / "votes.jsonl"
    votes.write_text(json.dumps(first(HUMAN)) + "\n" + json.dumps(first(HUMAN)) + "\n")
    with pytest.raises(RecordError, match=r"line 2: field 'question_id': q1 already appeared"):
        load_ppe_human(str(votes))
