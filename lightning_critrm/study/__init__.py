"""Data-efficiency studies: accuracy against training pairs, with and without critiques."""

from lightning_critrm.study.equivalence import Equivalence, equivalence_factors, plain_pairs_reaching
from lightning_critrm.study.results import RunResult, curves, equivalence_report, read_results_csv
from lightning_critrm.study.runner import StudySettings, run_study

__all__ = [
    "Equivalence", "RunResult", "StudySettings", "curves", "equivalence_factors", "equivalence_report",
    "plain_pairs_reaching", "read_results_csv", "run_study",
]
