"""Settings that name a wrong place on disk: one `error:` line naming the setting and the path,
exit status 1, no traceback, before any work. docs/bad-input.md lists the same kinds."""

import tempfile

import pytest

from lightning_critrm.locations import file_of_kind, writable_file, writable_folder
from tests.conftest import arithmetic_rows, write_jsonl
from tests.test_bad_input import assert_one_error_line, run
from tests.test_cli import tiny_config


def denied(*args, **kwargs):
    raise PermissionError(13, "Permission denied")


# kind -> (arguments after `--config <tiny config>`, what the one error line must say). In the
# arguments, FILE is an existing text file, DIR an existing empty folder.
CASES = {
    "run folder is a file": (["fit", "--trainer.default_root_dir", "FILE"],
                             r"--trainer\.default_root_dir .*notes\.txt: is a file, where a folder goes"),
    "run folder under a file": (["fit", "--trainer.default_root_dir", "FILE/run"],
                                r"--trainer\.default_root_dir .*notes\.txt/run: .*notes\.txt is a file, "
                                r"where a folder goes"),
    "cache folder is a file": (["fit", "--data.cache_dir", "FILE"],
                               r"--data\.cache_dir .*notes\.txt: is a file, where a folder goes"),
    "checkpoint folder is a file": (["fit", "--checkpoint.dirpath", "FILE"],
                                    r"--checkpoint\.dirpath .*notes\.txt: is a file, where a folder goes"),
    "critique cache is a folder": (["fit", "--data.critiques", "generate", "--data.critic.cache.path", "DIR"],
                                   r"--data\.critic\.cache\.path .*empty: is a folder, where a file goes"),
    "critique cache is another file": (["fit", "--data.critiques", "generate", "--data.critic.cache.path",
                                        "FILE"], r"--data\.critic\.cache\.path .*notes\.txt: is not a SQLite "
                                                 r"critique cache file"),
    "checkpoint is another file": (["validate", "--ckpt_path", "FILE"],
                                   r"--ckpt_path .*notes\.txt: is not a checkpoint file"),
    "checkpoint is a plain folder": (["validate", "--ckpt_path", "DIR"],
                                     r"--ckpt_path .*empty: a folder, but not a sharded checkpoint"),
    "backbone is a plain folder": (["fit", "--model.backbone", "DIR"],
                                   r"backbone .*empty: a folder without config\.json, not a model folder"),
    "export folder under a file": (["export", "--ckpt_path", "last", "--out", "FILE/model"],
                                   r"--out \(its folder\) .*notes\.txt: is a file, where a folder goes"),
}


@pytest.mark.parametrize("kind", CASES)
def test_a_wrong_place_is_named_in_one_line(kind, tmp_path, tiny_decoder_dir, monkeypatch, capsys):
    (tmp_path / "notes.txt").write_text("not what the setting names\n")
    (tmp_path / "empty").mkdir()
    cfg = tiny_config(tmp_path, tiny_decoder_dir, write_jsonl(tmp_path / "d.jsonl", arithmetic_rows(8)))
    args, expected = CASES[kind]
    places = {"FILE": str(tmp_path / "notes.txt"), "DIR": str(tmp_path / "empty")}
    args = [a.replace("FILE", places["FILE"]).replace("DIR", places["DIR"]) for a in args]
    assert_one_error_line(*run([args[0], "--config", str(cfg), *args[1:]], monkeypatch, capsys), expected)


def test_a_run_folder_that_cannot_be_written_is_named(tmp_path, tiny_decoder_dir, monkeypatch, capsys):
    cfg = tiny_config(tmp_path, tiny_decoder_dir, write_jsonl(tmp_path / "d.jsonl", arithmetic_rows(8)))
    monkeypatch.setattr(tempfile, "TemporaryFile", denied)  # chmod does not stop root, who runs CI
    assert_one_error_line(*run(["fit", "--config", str(cfg)], monkeypatch, capsys),
                          r"--trainer\.default_root_dir .*run: cannot be written \(Permission denied\)")


def test_score_names_an_output_that_is_a_folder_before_scoring(tmp_path, monkeypatch, capsys):
    args = ["score", "--model", str(tmp_path), "--input", str(tmp_path / "in.jsonl"),
            "--output", str(tmp_path)]
    assert_one_error_line(*run(args, monkeypatch, capsys), r"--output .*: is a folder, where a file goes")


def test_the_checks_by_hand(tmp_path):
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"PK\x03\x04rest of a zip")
    assert file_of_kind(ckpt, "--ckpt_path", "checkpoint") == ckpt
    assert file_of_kind(tmp_path / "new.sqlite", "x", "SQLite critique cache") == tmp_path / "new.sqlite"
    assert writable_folder(tmp_path / "a" / "b", "x").is_dir()
    assert writable_file(tmp_path / "c" / "out.jsonl", "x") == tmp_path / "c" / "out.jsonl"
    assert (tmp_path / "c").is_dir() and not (tmp_path / "c" / "out.jsonl").exists()
