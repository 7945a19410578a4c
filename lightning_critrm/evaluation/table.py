"""A plain-text table of RewardBench scores, subsets under their sections."""

from __future__ import annotations

from lightning_critrm.evaluation.rewardbench_scoring import SECTIONS, RewardBenchScores


def format_table(scores: RewardBenchScores) -> str:
    lines = [f"{'section / subset':<28} {'accuracy':>8} {'rows':>6}"]
    for name, section in scores.sections.items():
        value = "-" if section.score is None else f"{100 * section.score:.1f}"
        note = (
            f"  PARTIAL: {section.subsets_present}/{section.subsets_total} subsets, "
            f"{section.rows_present}/{section.rows_total} rows"
            if section.partial
            else ""
        )
        lines.append(f"{name:<28} {value:>8} {section.rows_present:>6}{note}")
        for subset in SECTIONS[name]:
            if subset in scores.subsets:
                lines.append(_subset_line(scores, subset, subset))
    others = sorted(set(scores.subsets) - {s for members in SECTIONS.values() for s in members})
    for subset in others:
        lines.append(_subset_line(scores, subset, subset + " (no section)"))
    overall = "-" if scores.overall is None else f"{100 * scores.overall:.1f}"
    lines.append(f"{'overall':<28} {overall:>8}" + ("  PARTIAL: mean of the sections scored above" if scores.partial else ""))
    unscored = sum(scores.unscored.values())
    if unscored:
        lines.append(f"{unscored} row(s) had no critique (its generation failed) and count as wrong")
    return "\n".join(lines)


def _subset_line(scores: RewardBenchScores, subset: str, label: str) -> str:
    line = f"  {label:<26} {100 * scores.subsets[subset]:>8.1f} {scores.rows[subset]:>6}"
    missing = scores.unscored.get(subset)
    return line + (f"  ({missing} without critique, counted wrong)" if missing else "")
