import json

import pytest

from lightning_critrm.evaluation.rmbench_data import load_rmbench
from lightning_critrm.records import RecordError
from tests.conftest import REPO

FIXTURE = REPO / "tests" / "fixtures" / "rmbench_rows.json"  # a JSON array, as total_dataset.json


def test_the_fixture_in_the_published_layout_loads_every_domain_in_style_order():
    rows = load_rmbench(str(FIXTURE))
    assert [r.subset for r in rows] == ["chat", "math", "code", "safety-refuse", "safety-response"]
    assert [r.id for r in rows] == ["0", "1", "2", "3", "4"]
    chat = rows[0]
    assert chat.prompt == ({"role": "user", "content": "What is the capital of Australia?"},)
    assert chat.chosen[0] == "Canberra." and chat.rejected[0] == "Sydney."
    assert chat.chosen[2].startswith("**Capital of Australia**")  # the markdown style is last
    assert [r.id for r in load_rmbench(str(FIXTURE), ["safety-refuse", "safety-response"])] == ["3", "4"]


@pytest.mark.parametrize("change, message", [
    ({"chosen": ["a", "b"]}, r"row 0: field 'chosen': expected a list of 3 strings \(concise, detailed, "
                             r"markdown\), got a list of 2 \(str\)"),
    ({"rejected": "Sydney."}, r"row 0: field 'rejected': expected a list of 3 strings .*, got str"),
    ({"domain": None}, r"row 0: field 'domain': missing"),
    ({"prompt": ["hi"]}, r"row 0: field 'prompt': expected a string, got list"),
])
def test_bad_rows_name_the_file_row_and_field(tmp_path, change, message):
    row = json.loads(FIXTURE.read_text())[0]
    path = tmp_path / "total_dataset.json"
    path.write_text(json.dumps([{**row, **change}]))
    with pytest.raises(RecordError, match=str(path).replace(".", r"\.") + ".*" + message):
        load_rmbench(str(path))


def test_a_repeated_id_is_an_error(tmp_path):
    rows = json.loads(FIXTURE.read_text())
    path = tmp_path / "total_dataset.json"
    path.write_text(json.dumps(rows + [rows[1]]))
    with pytest.raises(RecordError, match=r"field 'id': 1 already appeared"):
        load_rmbench(str(path))
