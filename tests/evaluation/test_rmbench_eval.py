import json
import re
from pathlib import Path

import pytest

from lightning_critrm.cli import main
from lightning_critrm.evaluation.rmbench_scoring import rmbench_scores
from tests.conftest import REPO
from tests.evaluation.test_rewardbench_callback import benchmark_fit_config, length_scored

FIXTURE = REPO / "tests" / "fixtures" / "rmbench_rows.json"


def test_every_chosen_style_meets_every_rejected_one_and_the_record_gives_the_logged_scores(
    tmp_path, pairs_file, tiny_decoder_dir
):
    callback, logged, record = length_scored(tmp_path, pairs_file, tiny_decoder_dir, source=str(FIXTURE),
                                             benchmark="rmbench", batch_size=4)
    assert [len(r["rewards_chosen"]) + len(r["rewards_rejected"]) for r in record["rows"]] == [6] * 5
    again = rmbench_scores((r["domain"], r["rewards_chosen"], r["rewards_rejected"]) for r in record["rows"])
    expected = {"chat": again.subsets["chat"], "math": again.subsets["math"], "code": again.subsets["code"],
                "safety": again.subsets["safety"], "safety-refuse": again.subsets["safety-refuse"],
                "safety-response": again.subsets["safety-response"], "hard": again.hard,
                "normal": again.normal, "easy": again.easy, "overall": again.overall,
                "rows_without_critique": 0.0}
    assert logged == pytest.approx({f"rmbench/{k}": v for k, v in expected.items()})
    table = callback.eval.table(callback.last_scores[callback.eval.name])
    assert re.search(r"^safety\s+\d+\.\d\s+2$", table, re.M) and "  safety-refuse" in table, table
    assert re.search(r"^overall\s+\d+\.\d$", table, re.M), table  # all four domains: not partial


def test_fit_logs_rmbench_each_epoch_and_the_subcommand_scores_the_same_weights_the_same(
    tmp_path, pairs_file, tiny_decoder_dir, capsys
):
    cfg = benchmark_fit_config(tmp_path, pairs_file, tiny_decoder_dir, source=str(FIXTURE),
                               benchmark="rmbench", batch_size=5)
    cli = main(["fit", "--config", str(cfg)])
    run = Path(cli.trainer.log_dir)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run)).Reload()
    assert [e.step for e in events.Scalars("rmbench/overall")] == [3, 6]  # the end of each epoch
    for tag in ("chat", "math", "code", "safety", "hard", "normal", "easy"):
        assert len(events.Scalars(f"rmbench/{tag}")) == 2, tag
    last = json.loads((run / "rmbench" / "epoch1-step6.json").read_text())

    capsys.readouterr()
    main(["rewardbench", "--config", str(cfg), "--ckpt_path", "last", "--benchmark", "rmbench"])
    out = capsys.readouterr().out
    again = [p for p in (tmp_path / "run").rglob("rmbench/*.json") if p.parent.parent != run]
    assert len(again) == 1
    scored = json.loads(again[0].read_text())
    assert scored["step"] == 6
    for key in ("overall", "hard", "normal", "easy"):
        assert scored[key] == pytest.approx(last[key], abs=1e-6), key
    def rewards(record):
        return [v for r in record["rows"] for v in r["rewards_chosen"] + r["rewards_rejected"]]

    assert rewards(scored) == pytest.approx(rewards(last), abs=1e-5)
    assert re.search(rf"^overall\s+{100 * last['overall']:.1f}$", out, re.M), out
