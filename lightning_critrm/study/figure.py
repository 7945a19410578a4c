"""The study's figure: held-out accuracy against training pairs, one curve per condition."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from lightning_critrm.atomic_write import write_bytes_atomically
from lightning_critrm.errors import MissingExtraError
from lightning_critrm.study.results import RunResult, curves


def require_matplotlib() -> None:
    """Checked before a study trains anything, not after an hour of runs."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise MissingExtraError(
            "the study draws its figure with matplotlib, which is not installed: "
            "pip install 'lightning_critrm[study]' (or pip install matplotlib)"
        ) from exc


def draw_accuracy_curves(ax, results: Sequence[RunResult], title: Optional[str] = None) -> None:
    """On a matplotlib ``ax``: the mean over seeds per condition (log x), each seed as a dot, the
    seeds' min-max as a band, and chance."""
    for condition, curve in curves(results).items():
        (line,) = ax.plot(curve.sizes, curve.mean, marker="o",
                          label=f"{condition} ({len(curve.seeds)} seed{'s' * (len(curve.seeds) > 1)})")
        if len(curve.seeds) > 1:
            ax.fill_between(curve.sizes, curve.low, curve.high, color=line.get_color(), alpha=0.15,
                            linewidth=0)
        dots = [(r.size, r.test_acc) for r in results if r.condition == condition]
        ax.scatter([s for s, _ in dots], [a for _, a in dots], color=line.get_color(), s=10, alpha=0.5)
    ax.axhline(0.5, color="grey", linestyle=":", linewidth=1, label="chance")
    ax.set_xscale("log", base=2)
    sizes = sorted({r.size for r in results})
    ax.set_xticks(sizes, [str(s) for s in sizes])  # the sizes run, as numbers (not 2^k)
    ax.minorticks_off()
    ax.set_xlabel("training pairs")
    ax.set_ylabel("held-out pair accuracy")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)


def save_figure(results: Sequence[RunResult], path: Path, title: Optional[str] = None) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display here
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    try:
        draw_accuracy_curves(ax, results, title)
        fig.tight_layout()
        image = io.BytesIO()
        fig.savefig(image, format="png")
    finally:
        plt.close(fig)
    write_bytes_atomically(path, image.getvalue())
