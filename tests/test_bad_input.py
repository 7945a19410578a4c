"""Every kind of bad input a user hits: one `error:` paragraph naming the file, line (or row) and
field, exit status 1, no traceback. docs/bad-input.md lists the same kinds."""

import json
import os
import re
import subprocess
import sys

import pytest
import yaml

from lightning_critrm.cli import run_command_line
from tests.conftest import REPO, arithmetic_rows, write_jsonl
from tests.test_cli import tiny_config

GOOD = arithmetic_rows(1)[0]


def lines(*rows) -> bytes:
    return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in rows)


def changed(**changes) -> dict:
    return {k: v for k, v in {**GOOD, **changes}.items() if v is not None}


MARGIN = ["--data.columns.margin", "margin"]
# kind -> (file name, file bytes, extra arguments, what the one error line must say)
CASES = {
    "malformed JSON": ("d.jsonl", lines(GOOD, b'{"prompt": "Q", "chosen": '), [],
                       r"d\.jsonl: line 2: not valid JSON \(Expecting value at column 27\)"),
    "missing column": ("d.jsonl", lines(GOOD, changed(rejected=None)), [],
                       r"d\.jsonl: line 2: field 'rejected': missing"),
    "misnamed column": ("d.jsonl", lines(GOOD), ["--data.columns.chosen", "answer"],
                        r"d\.jsonl: line 1: field 'answer': missing"),
    "wrong type": ("d.jsonl", lines(GOOD, changed(chosen=42)), [],
                   r"d\.jsonl: line 2: field 'chosen': expected a string or a list of messages, got int"),
    "empty text": ("d.jsonl", lines(GOOD, changed(rejected="  ")), [],
                   r"d\.jsonl: line 2: field 'rejected': the completion is empty"),
    "empty critique": ("d.jsonl", lines(GOOD, changed(chosen_critique="")), [],
                       r"d\.jsonl: line 2: field 'chosen_critique': expected a non-empty critique string"),
    "invalid UTF-8": ("d.jsonl", lines(GOOD, b'{"prompt": "caf\xe9"}'), [],
                      r"d\.jsonl: line 2: not valid UTF-8 \(byte 16 of the line\)"),
    "invalid UTF-8 in a .json file": ("d.json", b'[\n{"prompt": "caf\xe9"}]', [], r"d\.json: line 2: not "
                                                                                  r"valid UTF-8"),
    "empty file": ("d.jsonl", b"", [], r"d\.jsonl: holds no rows \(the file is empty\)"),
    "not an object": ("d.jsonl", lines(GOOD, b'["Q", "A", "B"]'), [],
                      r"d\.jsonl: line 2: expected a JSON object, got list"),
    "no assistant turn": ("d.jsonl",
                          lines(GOOD, changed(prompt=None, chosen=[{"role": "user", "content": "Q"}])), [],
                          r"d\.jsonl: line 2: field 'chosen': the conversation must end with an assistant "
                          r"message"),
    "NaN margin": ("d.jsonl", lines(changed(margin=1.0), b'{"prompt": "Q", "chosen": "A", "rejected": "B", '
                                                         b'"chosen_critique": "c", '
                                    b'"rejected_critique": "r", "margin": NaN}'), MARGIN,
                   r"d\.jsonl: line 2: field 'margin': expected a finite number, got nan"),
    "infinite margin": ("d.jsonl", lines(changed(margin=1.0), changed(margin=float("inf"))), MARGIN,
                        r"d\.jsonl: line 2: field 'margin': expected a finite number, got inf"),
    "margin not a number": ("d.jsonl", lines(changed(margin="high")), MARGIN,
                            r"d\.jsonl: line 1: field 'margin': expected a number, got 'high'"),
    "invalid JSON file": ("d.json", b'[\n{"prompt": }\n]', [], r"d\.json: line 2: not valid JSON"),
    "missing file": (None, None, [], r"no data file matches '.*nope\.jsonl'"),
    "neither a local path nor a hub set": ("d.jsonl", lines(GOOD), ["--data.source", "data/pairs"],
                                           r"^error: data/pairs: no such local file, glob or folder \(looked "
                                           r"from .*\), nor a hub dataset that could be read \("),
    "bad config value": ("d.jsonl", lines(GOOD), ["--data.val_fraction", "1.5"],
                         r"data\.val_fraction must be in \[0, 1\), got 1\.5"),
    "bad config size": ("d.jsonl", lines(GOOD), ["--data.max_train_pairs", "0"], r"data\.max_train_pairs "
                                                                                 r"must be >= 1, got 0"),
}


def run(argv, monkeypatch, capsys) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["lightning_critrm", *argv])
    with pytest.raises(SystemExit) as exit_info:
        run_command_line()
    return exit_info.value.code, capsys.readouterr().err


def assert_one_error_line(code: int, err: str, expected: str) -> None:
    assert code == 1 and "Traceback" not in err, err
    found = err.strip().splitlines()
    assert len(found) == 1 and found[0].startswith("error: "), err
    assert re.search(expected, found[0]), found[0]


@pytest.mark.parametrize("kind", CASES)
def test_bad_data_prints_one_located_error_and_no_traceback(kind, tmp_path, tiny_decoder_dir, monkeypatch,
                                                            capsys):
    name, contents, extra, expected = CASES[kind]
    source = tmp_path / (name or "nope.jsonl")
    if contents is not None:
        source.write_bytes(contents)
    cfg = tiny_config(tmp_path, tiny_decoder_dir, source)
    assert_one_error_line(*run(["fit", "--config", str(cfg), *extra], monkeypatch, capsys), expected)


def test_an_unreadable_file_is_named(tmp_path, monkeypatch):
    from pathlib import Path

    from lightning_critrm.data.sources import read_pairs
    from lightning_critrm.errors import MissingInputError
    from lightning_critrm.records import ColumnMap

    path = write_jsonl(tmp_path / "d.jsonl", [GOOD])

    def denied(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "open", denied)  # chmod 000 does not stop root, who runs CI
    with pytest.raises(MissingInputError, match=r"d\.jsonl: cannot be read \(permission denied\)"):
        read_pairs(str(path), ColumnMap(), True)


def test_a_config_value_of_the_wrong_type_names_the_key(tmp_path, tiny_decoder_dir, monkeypatch, capsys):
    # jsonargparse reports these itself (exit status 2, the key named): kept as it is.
    cfg = tiny_config(tmp_path, tiny_decoder_dir, write_jsonl(tmp_path / "d.jsonl", [GOOD]))
    code, err = run(["fit", "--config", str(cfg), "--data.batching.batch_size", "four"], monkeypatch, capsys)
    assert code == 2 and "data.batching.batch_size" in err and "Traceback" not in err


def test_shared_prompt_on_an_encoder_is_refused_in_one_line(tmp_path, tiny_encoder_dir, monkeypatch, capsys):
    cfg = tiny_config(tmp_path, tiny_encoder_dir, write_jsonl(tmp_path / "d.jsonl", arithmetic_rows(8)))
    args = ["fit", "--config", str(cfg), "--model.pooling", "first", "--data.layout.shared_prompt", "true"]
    assert_one_error_line(*run(args, monkeypatch, capsys),
                          r"data\.layout\.shared_prompt needs a causal decoder backbone .*: set "
                          r"data\.layout\.shared_prompt: false")


def test_bad_rewardbench_rows_and_subsets_are_named(tmp_path, tiny_decoder_dir, monkeypatch, capsys):
    from tests.evaluation.test_rewardbench_callback import rb_rows

    cfg = tiny_config(tmp_path, tiny_decoder_dir, write_jsonl(tmp_path / "d.jsonl", arithmetic_rows(8)))
    rows = rb_rows()
    rb = write_jsonl(tmp_path / "rb.jsonl", rows[:2] + [{k: v for k, v in rows[2].items() if k != "subset"}])
    args = ["rewardbench", "--config", str(cfg), "--source", str(rb), "--data.critiques", "none"]
    assert_one_error_line(*run(args, monkeypatch, capsys), r"rb\.jsonl: line 3: field 'subset': missing")
    rb = write_jsonl(tmp_path / "rb.jsonl", rows)
    assert_one_error_line(*run([*args, "--subsets", "[hep-go, no-such-subset]"], monkeypatch, capsys),
                          r"subsets \['no-such-subset'\] are not in .*rb\.jsonl; it has: hep-go, "
                          r"llmbar-natural$")


def test_skipped_rows_are_reported_by_line_in_the_log_and_in_tensorboard(tmp_path, tiny_decoder_dir, caplog):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from lightning_critrm.cli import main

    rows = [json.dumps(r).encode() for r in arithmetic_rows(12)]
    rows[3] = b"{not json"
    rows[7] = json.dumps(changed(chosen="")).encode()
    source = tmp_path / "d.jsonl"
    source.write_bytes(lines(*rows))
    cfg = tiny_config(tmp_path, tiny_decoder_dir, source)
    cli = main(["fit", "--config", str(cfg), "--data.on_bad_row", "skip", "--trainer.max_steps", "1"])
    assert len(cli.datamodule.train_dataset) + len(cli.datamodule.val_dataset) == 10
    expected = [f"{source}: line 4: not valid JSON (Expecting property name enclosed in double quotes at "
                "column 2)",
                f"{source}: line 8: field 'chosen': the completion is empty"]
    assert ("source: 2 bad row(s) skipped (data.on_bad_row: skip):\n"
            + "\n".join(f"  {e}" for e in expected) in caplog.text)
    events = EventAccumulator(cli.trainer.log_dir, size_guidance={"tensors": 0}).Reload()
    text = events.Tensors("data/source_skipped_rows/text_summary")[0].tensor_proto.string_val[0].decode()
    assert all(e in text for e in expected)
    assert [s.value for s in events.Scalars("data/source_rows_skipped")] == [2.0]


def test_the_command_line_prints_the_error_and_keeps_the_traceback_in_the_log(tmp_path, tiny_decoder_dir):
    source = tmp_path / "d.jsonl"
    source.write_bytes(lines(GOOD, changed(rejected=None)))
    cfg = tiny_config(tmp_path, tiny_decoder_dir, source)
    config = yaml.safe_load(cfg.read_text())
    config["trainer"]["enable_progress_bar"] = True
    cfg.write_text(yaml.safe_dump(config))
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    env.pop("LIGHTNING_CRITRM_SHOW_LOGS", None)
    done = subprocess.run([sys.executable, "-m", "lightning_critrm", "fit", "--config", str(cfg)], cwd=REPO,
                          env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    log = tmp_path / "run" / "logs" / "fit.log"
    assert done.stderr == f"error: {source}: line 2: field 'rejected': missing\n"
    assert done.stdout == f"other libraries' output: {log} (--show_logs shows it here)\n"
    assert "Traceback" in log.read_text() and "field 'rejected': missing" in log.read_text()
    env["LIGHTNING_CRITRM_TRACEBACK"] = "1"
    done = subprocess.run([sys.executable, "-m", "lightning_critrm", "fit", "--config", str(cfg)], cwd=REPO,
                          env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "Traceback" in done.stderr and "RecordError" in done.stderr
