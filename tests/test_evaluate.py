import json
import re
from pathlib import Path

import pytest

from lightning_critrm.cli import main
from lightning_critrm.errors import InputError
from lightning_critrm.evaluation import RewardBenchCallback
from lightning_critrm.scalars import read_last_scalars
from tests.conftest import REPO
from tests.evaluation.test_rewardbench_callback import benchmark_fit_config

FIXTURES = REPO / "tests" / "fixtures"
SOURCES = {"rmbench": str(FIXTURES / "rmbench_rows.json"),
           "judgebench": str(FIXTURES / "judgebench_rows.jsonl"),
           "rmb": str(FIXTURES / "rmb" / "RMB_dataset"),
           "ppe_human": str(FIXTURES / "ppe" / "PPE-Human-Preference-V1"),
           "ppe_correctness": str(FIXTURES / "ppe")}


def test_fit_logs_every_configured_benchmark_each_epoch_and_evaluate_on_the_export_prints_the_same(
    tmp_path, pairs_file, tiny_decoder_dir, capsys
):
    cfg = benchmark_fit_config(tmp_path, pairs_file, tiny_decoder_dir, benchmark=list(SOURCES),
                               source=SOURCES, batch_size=5)
    cli = main(["fit", "--config", str(cfg)])
    run = Path(cli.trainer.log_dir)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run)).Reload()
    for name in SOURCES:  # each benchmark at the end of each epoch
        assert [e.step for e in events.Scalars(f"{name}/overall")] == [3, 6], name
    assert len(events.Scalars("rmb/bon_harmlessness")) == 2
    last = json.loads((run / "rmb" / "epoch1-step6.json").read_text())

    out = tmp_path / "exported"
    main(["export", "--config", str(cfg), "--ckpt_path", "last", "--out", str(out),
          "--reward_stats", "false"])
    capsys.readouterr()
    main(["evaluate", "--model", str(out), "--benchmark", "rmb", "--source", SOURCES["rmb"],
          "--out_dir", str(tmp_path / "evaluations")])
    printed = capsys.readouterr().out
    scored = json.loads((tmp_path / "evaluations" / "rmb" / "exported.json").read_text())
    rewards = [v for r in scored["rows"] for v in r["rewards"]]
    assert rewards == pytest.approx([v for r in last["rows"] for v in r["rewards"]], abs=1e-4)
    assert scored["sections"] == pytest.approx(last["sections"]) and scored["overall"] == pytest.approx(
        last["overall"])
    assert re.search(rf"^overall\s+{100 * last['overall']:.1f}$", printed, re.M), printed
    for section, value in last["sections"].items():
        assert re.search(rf"^{section}\s+{100 * value:.1f}\s", printed, re.M), (section, printed)
    logged = read_last_scalars(tmp_path / "evaluations" / "tensorboard" / "exported")
    assert logged["rmb/overall"] == pytest.approx(last["overall"])
    assert logged["rmb/bon_harmlessness"] == pytest.approx(last["sections"]["bon_harmlessness"])

    # PPE correctness too: a record of many metrics per set, the same from the export
    last = json.loads((run / "ppe_correctness" / "epoch1-step6.json").read_text())
    main(["evaluate", "--model", str(out), "--benchmark", "ppe_correctness", "--source",
          SOURCES["ppe_correctness"], "--out_dir", str(tmp_path / "evaluations")])
    printed = capsys.readouterr().out
    scored = json.loads((tmp_path / "evaluations" / "ppe_correctness" / "exported.json").read_text())
    rewards = [v for r in scored["rows"] for v in r["rewards"]]
    assert rewards == pytest.approx([v for r in last["rows"] for v in r["rewards"]], abs=1e-4)
    assert scored["overall"] == pytest.approx(last["overall"])
    assert scored["sets"].keys() == last["sets"].keys()
    for name, metrics in last["sets"].items():
        assert scored["sets"][name]["best_of_k"] == pytest.approx(metrics["best_of_k"]), name
        assert scored["sets"][name]["roc_auc"] == pytest.approx(metrics["roc_auc"]), name
        assert re.search(rf"^{name}\s+{100 * metrics['accuracy']:.1f}\s", printed, re.M), (name, printed)

    # --shared_prompt: each row's completions with their prompt once; the same rewards.
    main(["evaluate", "--model", str(out), "--benchmark", "ppe_correctness", "--source",
          SOURCES["ppe_correctness"], "--out_dir", str(tmp_path / "shared"), "--shared_prompt", "true"])
    shared = json.loads((tmp_path / "shared" / "ppe_correctness" / "exported.json").read_text())
    assert [v for r in shared["rows"] for v in r["rewards"]] == pytest.approx(rewards, abs=1e-5)


def test_several_benchmarks_take_their_sources_and_subsets_by_name():
    callback = RewardBenchCallback(benchmark=["rmbench", "rmb"], source={"rmb": "data/RMB_dataset"},
                                   subsets={"rmbench": ["chat"]})
    assert [(e.name, e.source, e.subsets) for e in callback.evals] == [
        ("rmbench", "THU-KEG/RM-Bench", ["chat"]), ("rmb", "data/RMB_dataset", None)]
    with pytest.raises(InputError, match=r"source: give one per benchmark, e.g. \{rmbench: ...\}"):
        RewardBenchCallback(benchmark=["rmbench", "rmb"], source="x.json")
    with pytest.raises(InputError, match=r"subsets: \['judgebench'\] are not among the benchmarks"):
        RewardBenchCallback(benchmark=["rmbench", "rmb"], subsets={"judgebench": ["math"]})
    with pytest.raises(InputError, match=r"give each benchmark once"):
        RewardBenchCallback(benchmark=["rmb", "rmb"])


def test_evaluate_on_a_folder_that_is_no_export_says_so(tmp_path):
    with pytest.raises(Exception, match=r"--model .*: not a folder written by `export`"):
        main(["evaluate", "--model", str(tmp_path), "--benchmark", "rmb", "--source", SOURCES["rmb"]])
