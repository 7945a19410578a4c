import math

import pytest

from lightning_critrm.study.results import (
    RunResult,
    curves,
    equivalence_report,
    read_results_csv,
    results_csv,
)


def result(condition: str, size: int, seed: int, acc: float, **rewardbench) -> RunResult:
    return RunResult(size=size, condition=condition, seed=seed, test_acc=acc, test_loss=0.6, test_pairs=100,
                     train_pairs=size, steps=size // 8, wall_s=12.5, rewardbench=rewardbench)


RUNS = [
    result("none", 100, 0, 0.60), result("none", 100, 1, 0.64),
    result("none", 200, 0, 0.70), result("none", 200, 1, 0.70),
    result("none", 400, 0, 0.80), result("none", 400, 1, 0.76),
    result("critiques", 100, 0, 0.74), result("critiques", 100, 1, 0.76),
    result("critiques", 200, 0, 0.90), result("critiques", 200, 1, 0.84),
]


def test_curves_hold_the_mean_and_the_spread_over_seeds():
    found = curves(RUNS)
    assert found["none"].sizes == [100, 200, 400]
    assert found["none"].mean == pytest.approx([0.62, 0.70, 0.78])
    assert found["none"].low == [0.60, 0.70, 0.76] and found["none"].high == [0.64, 0.70, 0.80]
    assert found["critiques"].mean == pytest.approx([0.75, 0.87]) and found["critiques"].seeds == [0, 1]


def test_the_report_gives_the_factor_from_the_mean_curves_and_per_seed():
    report = equivalence_report(RUNS, baseline="none")
    assert report["baseline"] == "none" and list(report["conditions"]) == ["critiques"]
    entry = report["conditions"]["critiques"]
    # Mean curves: 0.75 lies between 0.70 (200) and 0.78 (400) at t = 5/8; 0.87 beyond 0.78 (400).
    n100, n200 = entry["factors"]
    assert n100["relation"] == "=" and n100["plain_pairs"] == pytest.approx(200 * 2 ** (5 / 8), abs=1e-3)
    assert n100["factor"] == pytest.approx(2 * 2 ** (5 / 8), abs=1e-4)
    assert (n200["relation"], n200["plain_pairs"], n200["factor"], n200["reads"]) == (">", 400.0, 2.0, "> 2x")
    assert entry["range"] == "> 2x to 3.08x"
    # Seed 0: 0.74 between 0.70 and 0.80 (t = 0.4); seed 1: 0.76 = its 400-pair point.
    assert entry["per_seed"]["0"]["factors"][0]["plain_pairs"] == pytest.approx(200 * 2 ** 0.4, abs=1e-3)
    assert entry["per_seed"]["1"]["factors"][0]["plain_pairs"] == pytest.approx(400.0)


def test_a_report_without_baseline_runs_has_no_factors():
    assert equivalence_report(RUNS[6:], baseline="none")["conditions"] == {}


def test_the_csv_round_trips_with_rewardbench_columns(tmp_path):
    runs = [result("none", 100, 0, 0.6, **{"rewardbench/overall": 0.55}), result("critiques", 100, 0, 0.7)]
    text = results_csv(runs)
    lines = text.splitlines()
    assert lines[0] == ("size,condition,seed,test_acc,test_loss,test_pairs,train_pairs,steps,wall_s,"
                        "rewardbench/overall")
    assert lines[1:] == ["100,critiques,0,0.7,0.6,100,100,12,12.5,",
                         "100,none,0,0.6,0.6,100,100,12,12.5,0.55"]
    (tmp_path / "results.csv").write_text(text)
    back = read_results_csv(tmp_path / "results.csv")
    assert [(r.condition, r.test_acc, r.rewardbench) for r in back] == [
        ("critiques", 0.7, {}), ("none", 0.6, {"rewardbench/overall": 0.55})]
    assert not math.isnan(back[0].test_loss)


def test_a_run_result_saves_and_loads(tmp_path):
    run = result("none", 64, 1, 0.625)
    run.args = ["--data.critiques", "none"]
    run.save(tmp_path)
    assert RunResult.load(tmp_path) == run
    assert RunResult.load(tmp_path / "missing") is None


def test_results_are_written_as_ordinary_files(tmp_path):
    import os

    result("none", 8, 0, 0.5).save(tmp_path)
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "result.json").stat().st_mode & 0o777 == 0o666 & ~umask
