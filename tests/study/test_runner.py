import json
import subprocess
import sys

import pytest
import yaml

from lightning_critrm.errors import InputError
from lightning_critrm.study.results import RunResult
from lightning_critrm.study.runner import (
    StudySettings,
    _pin_fit_config,
    check_settings,
    pairs_per_step,
    plan_runs,
)
from tests.conftest import REPO, arithmetic_rows, write_jsonl

FIT = {"model": {"backbone": "x"}, "data": {"batching": {"batch_size": 4}},
       "trainer": {"accumulate_grad_batches": 2}}


def test_runs_are_planned_smallest_first_with_steps_from_epochs_and_a_floor():
    settings = StudySettings(sizes=[64, 16], seeds=[0, 1], epochs=2, min_steps=5)
    runs = plan_runs(settings, FIT)
    assert [(r.size, r.seed, r.condition) for r in runs] == [
        (16, 0, "critiques"), (16, 0, "none"), (16, 1, "critiques"), (16, 1, "none"),
        (64, 0, "critiques"), (64, 0, "none"), (64, 1, "critiques"), (64, 1, "none"),
    ]
    # 8 pairs per step (4 x 2 accumulated): 2 epochs of 16 pairs = 4 steps, floored at 5; of 64, 16.
    assert [r.steps for r in runs] == [5] * 4 + [16] * 4
    args = runs[5].args
    assert args[:2] == ("--data.critiques", "none") and runs[5].name == "none-n64-seed0"
    pairs = dict(zip(args[::2], args[1::2]))
    assert pairs["--data.max_train_pairs"] == "64" and pairs["--data.sample_seed"] == "0"
    assert pairs["--seed_everything"] == "0" and pairs["--trainer.max_steps"] == "16"
    assert pairs["--trainer.val_check_interval"] == "16"  # one validation, after the last step


def test_fit_overrides_reach_every_run_and_the_step_count():
    overrides = ["--data.batching.batch_size", "16", "--model.lr", "1e-4"]
    runs = plan_runs(StudySettings(sizes=[64], seeds=[0], min_steps=1), FIT, overrides)
    assert all(r.args[:4] == tuple(overrides) for r in runs)
    assert runs[0].steps == 2  # 64 pairs / (16 x 2) per step


def test_pairs_per_step_count_every_process_and_each_conditions_own_batch():
    assert pairs_per_step(FIT) == 8
    assert pairs_per_step(FIT, ["--trainer.devices", "2", "--trainer.num_nodes", "3"]) == 48
    assert pairs_per_step(FIT, ["--trainer.devices", "[0, 1]"]) == 16
    assert pairs_per_step(FIT, ["--trainer.devices", "0,1,2"]) == 24
    assert pairs_per_step(FIT, ["--trainer.devices", "auto", "--trainer.accelerator", "cpu"]) == 8
    # the last one wins
    assert pairs_per_step(FIT, ["--data.batching.batch_size", "2", "--data.batching.batch_size", "1"]) == 2
    # A condition with its own batch size gets the steps of the same passes over the set.
    conditions = {"critiques": {"data.batching.batch_size": 2}, "none": {"data.critiques": "none"}}
    runs = plan_runs(StudySettings(sizes=[64], seeds=[0], conditions=conditions), FIT,
                     ["--trainer.devices", "2"])
    # 64 / (2 x 2 x 2), 64 / 16
    assert [(r.condition, r.steps) for r in runs] == [("critiques", 8), ("none", 4)]


def test_a_token_budget_is_refused_since_steps_could_not_say_how_many_passes_a_run_makes():
    fit = {**FIT, "data": {"batching": {"batch_size": 4, "max_tokens_per_batch": 4096}}}
    with pytest.raises(InputError, match="max_tokens_per_batch is 4096.*set "
                                         "data.batching.max_tokens_per_batch: null"):
        plan_runs(StudySettings(sizes=[8], seeds=[0]), fit)
    assert plan_runs(StudySettings(sizes=[8], seeds=[0]), fit,
                     ["--data.batching.max_tokens_per_batch", "null"])


@pytest.mark.parametrize("change, message", [
    ({"sizes": [0, 8]}, "study.sizes must be positive"),
    ({"seeds": []}, "study.seeds is empty"),
    ({"baseline": "plain"}, "study.baseline 'plain' is not one of"),
    ({"conditions": {"a/b": {}, "none": {}}}, "names must be plain words"),
    ({"epochs": 0}, "study.epochs must be > 0"),
])
def test_bad_settings_are_named(change, message):
    with pytest.raises(InputError, match=message):
        check_settings(StudySettings(**change), FIT)


def test_a_study_without_a_fit_section_is_refused():
    with pytest.raises(InputError, match="needs a `fit` section"):
        check_settings(StudySettings(), {"trainer": {}})


def test_a_study_folder_refuses_another_fit_config(tmp_path):
    path = tmp_path / "fit.yaml"
    _pin_fit_config(path, FIT)
    _pin_fit_config(path, json.loads(json.dumps(FIT)))  # the same config again: fine
    with pytest.raises(InputError, match="holds runs of another `fit` config"):
        _pin_fit_config(path, {**FIT, "model": {"backbone": "y"}})


def run_study_command(config, *args):
    return subprocess.run([sys.executable, "-m", "lightning_critrm", "study", "--config", str(config), *args],
                          capture_output=True, text=True, cwd=REPO, timeout=600)


def test_a_small_study_runs_end_to_end_and_resumes_without_rerunning(tmp_path, tiny_decoder_dir):
    rows = arithmetic_rows(40)
    pairs = write_jsonl(tmp_path / "pairs.jsonl", rows)
    out = tmp_path / "study"
    config = tmp_path / "study.yaml"
    config.write_text(yaml.safe_dump({
        "study": {"out": str(out), "sizes": [8, 16], "seeds": [0], "min_steps": 2},
        "fit": {
            "seed_everything": 0,
            "trainer": {"accelerator": "cpu", "devices": 1, "log_every_n_steps": 1},
            "model": {"backbone": tiny_decoder_dir, "lr": 1e-3},
            "data": {"source": str(pairs), "max_length": 64, "val_fraction": 0.25,
                     "batching": {"batch_size": 4},
                     "cache_dir": str(tmp_path / "cache")},
        },
    }))
    first = run_study_command(config, "--fit.data.max_val_pairs", "6")
    assert first.returncode == 0, first.stderr[-3000:]
    progress = [line for line in first.stdout.splitlines() if line.startswith("[")]
    assert [line.split(":")[0] for line in progress] == [
        "[1/4] critiques n=8 seed=0", "[2/4] none n=8 seed=0", "[3/4] critiques n=16 seed=0", "[4/4] none "
                                                                                              "n=16 seed=0"]
    lines = (out / "results.csv").read_text().splitlines()
    assert lines[0] == "size,condition,seed,test_acc,test_loss,test_pairs,train_pairs,steps,wall_s"
    assert [line.split(",")[:3] + line.split(",")[5:8] for line in lines[1:]] == [
        ["8", "critiques", "0", "6", "8", "2"], ["16", "critiques", "0", "6", "16", "4"],
        ["8", "none", "0", "6", "8", "2"], ["16", "none", "0", "6", "16", "4"],
    ]
    for run in ("critiques-n8-seed0", "none-n16-seed0"):
        assert (out / run / "lightning_logs").is_dir() and not (out / run / "checkpoints").exists()
    assert (out / "accuracy_vs_pairs.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads((out / "equivalence.json").read_text())
    assert [p["size"] for p in report["conditions"]["critiques"]["factors"]] == [8, 16]
    assert "equivalence factor of critiques over none pairs" in first.stdout

    # A run killed midway leaves a folder without result.json: only that run runs again.
    interrupted = out / "none-n16-seed0"
    (interrupted / "result.json").unlink()
    kept = {run: (out / run / "result.json").stat().st_mtime_ns
            for run in ("critiques-n8-seed0", "none-n8-seed0", "critiques-n16-seed0")}
    second = run_study_command(config, "--fit.data.max_val_pairs", "6")
    assert second.returncode == 0, second.stderr[-3000:]
    done = [line.split(":")[0] for line in second.stdout.splitlines() if "done before" in line]
    assert done == ["[1/4] critiques n=8 seed=0", "[2/4] none n=8 seed=0", "[3/4] critiques n=16 seed=0"]
    assert "[4/4] none n=16 seed=0: test acc" in second.stdout
    assert {run: (out / run / "result.json").stat().st_mtime_ns for run in kept} == kept
    assert RunResult.load(interrupted).steps == 4
    assert (out / "results.csv").read_text().splitlines()[1:] != []

    # Other settings for a finished run are refused, not mixed into the curves.
    third = run_study_command(config, "--fit.data.max_val_pairs", "4")
    assert third.returncode == 1
    assert third.stderr.startswith("error: ")
    assert "made with other settings" in third.stderr
