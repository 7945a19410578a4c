"""The one atomic writer: the old file or the new one, never half of one, and nothing left beside it."""

import pytest

from lightning_critrm.atomic_write import atomic_file, atomic_folder, write_text_atomically


def test_a_write_that_fails_midway_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "scores.jsonl"
    write_text_atomically(path, "old\n")
    with pytest.raises(RuntimeError, match="killed"), atomic_file(path, "w") as fh:
        fh.write("half of the new")
        raise RuntimeError("killed")
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["scores.jsonl"]


def test_text_is_utf8_and_the_file_is_readable_by_others(tmp_path):
    path = tmp_path / "deep" / "record.json"
    write_text_atomically(path, '{"name": "Müller ✓"}')
    assert path.read_bytes() == '{"name": "Müller ✓"}'.encode()
    assert path.stat().st_mode & 0o044  # not mkstemp's private 0600


def test_a_folder_appears_whole_or_not_at_all(tmp_path):
    target = tmp_path / "export"
    with pytest.raises(RuntimeError), atomic_folder(target, complete_marker="config.json") as tmp:
        (tmp / "config.json").write_text("{}")
        raise RuntimeError("killed")
    assert not target.exists() and list(tmp_path.iterdir()) == []
    with atomic_folder(target, complete_marker="config.json") as tmp:
        (tmp / "config.json").write_text("{}")
    assert [p.name for p in tmp_path.iterdir()] == ["export"]
