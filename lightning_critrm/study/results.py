"""A study's results: one record per finished run, the CSV of them all, and the curves they make."""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

from lightning_critrm.atomic_write import write_text_atomically
from lightning_critrm.study.equivalence import Equivalence, describe_range, equivalence_factors

RESULT_FILE = "result.json"
CSV_COLUMNS = ["size", "condition", "seed", "test_acc", "test_loss", "test_pairs", "train_pairs",
               "steps", "wall_s"]


@dataclass
class RunResult:
    size: int  # training pairs asked for
    condition: str
    seed: int
    test_acc: float  # on the held-out prompts, once, after the last step (nothing is selected on it)
    test_loss: float
    test_pairs: int
    train_pairs: int  # training pairs the run had (fewer than ``size`` when the split is smaller)
    steps: int
    wall_s: float
    args: list[str] = field(default_factory=list)  # the fit arguments after --config (and recipe settings)
    rewardbench: dict[str, float] = field(default_factory=dict)  # scalars logged at the last step

    def save(self, folder: Path) -> None:
        write_text_atomically(folder / RESULT_FILE, json.dumps(asdict(self), indent=1) + "\n")

    @classmethod
    def load(cls, folder: Path) -> Optional["RunResult"]:
        path = folder / RESULT_FILE
        return cls(**json.loads(path.read_text())) if path.exists() else None


def results_csv(results: Sequence[RunResult]) -> str:
    """The CSV text: one row per run, sorted by condition, size and seed; RewardBench numbers,
    when the fit config evaluates them, as one column per logged scalar."""
    extra = sorted({k for r in results for k in r.rewardbench})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS + extra)
    for r in sorted(results, key=lambda r: (r.condition, r.size, r.seed)):
        row = asdict(r)
        writer.writerow(
            [_cell(row[c]) for c in CSV_COLUMNS] + [_cell(r.rewardbench.get(k, math.nan)) for k in extra]
        )
    return out.getvalue()


def _cell(value) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return str(value)


@dataclass(frozen=True)
class Curve:
    """Accuracy against training pairs for one condition: the mean over seeds, and its spread."""

    condition: str
    sizes: list[int]
    mean: list[float]
    low: list[float]
    high: list[float]
    seeds: list[int]


def curves(results: Sequence[RunResult], metric: str = "test_acc") -> dict[str, Curve]:
    by_point: dict[tuple[str, int], list[tuple[int, float]]] = defaultdict(list)
    for r in results:
        by_point[(r.condition, r.size)].append((r.seed, float(getattr(r, metric))))
    found: dict[str, Curve] = {}
    for condition in sorted({c for c, _ in by_point}):
        sizes = sorted(s for c, s in by_point if c == condition)
        values = [[v for _, v in by_point[(condition, s)]] for s in sizes]
        seeds = sorted({seed for s in sizes for seed, _ in by_point[(condition, s)]})
        found[condition] = Curve(condition, sizes, [statistics.fmean(v) for v in values],
                                 [min(v) for v in values], [max(v) for v in values], seeds)
    return found


def equivalence_report(results: Sequence[RunResult], baseline: str) -> dict:
    """For every condition but ``baseline``: the equivalence factor at each size, from the mean
    curves, and its range over seeds (each seed's curve against the baseline's curve of the same
    seed), as JSON-ready values."""
    mean_curves = curves(results)
    report: dict = {"baseline": baseline, "conditions": {}}
    if baseline not in mean_curves:
        return report
    plain = mean_curves[baseline]
    for condition, curve in mean_curves.items():
        if condition == baseline:
            continue
        points = equivalence_factors(curve.sizes, curve.mean, plain.sizes, plain.mean)
        per_seed = _per_seed_factors(results, condition, baseline)
        report["conditions"][condition] = {
            "factors": [_point_json(p) for p in points],
            "range": describe_range(points),
            "per_seed": {str(seed): {"factors": [_point_json(p) for p in ps], "range": describe_range(ps)}
                         for seed, ps in per_seed.items()},
        }
    return report


def _per_seed_factors(
    results: Sequence[RunResult], condition: str, baseline: str
) -> dict[int, list[Equivalence]]:
    found = {}
    for seed in sorted({r.seed for r in results}):
        seed_curves = curves([r for r in results if r.seed == seed])
        if condition in seed_curves and baseline in seed_curves:
            mine, plain = seed_curves[condition], seed_curves[baseline]
            found[seed] = equivalence_factors(mine.sizes, mine.mean, plain.sizes, plain.mean)
    return found


def _point_json(p: Equivalence) -> dict:
    return {"size": p.size, "accuracy": round(p.accuracy, 6), "plain_pairs": round(p.plain_pairs, 3),
            "relation": p.relation, "factor": round(p.factor, 4), "reads": p.describe()}


def read_results_csv(path: str | Path) -> list[RunResult]:
    """The runs of a study CSV (for notebooks: the figure and factors from the file alone)."""
    results = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            rewardbench = {k: float(v) for k,
                           v in row.items() if k not in CSV_COLUMNS and v not in ("", None)}
            results.append(RunResult(
                size=int(row["size"]), condition=row["condition"], seed=int(row["seed"]),
                test_acc=float(row["test_acc"]), test_loss=float(row["test_loss"] or "nan"),
                test_pairs=int(row["test_pairs"]), train_pairs=int(row["train_pairs"]),
                                     steps=int(row["steps"]),
                wall_s=float(row["wall_s"]), rewardbench=rewardbench,
            ))
    return results
