"""The equivalence factor: how many plain pairs a critique-enhanced pair is worth.

For a size ``n`` trained with critiques to accuracy ``a``, the factor is ``m / n`` where ``m`` is the
number of plain pairs at which the plain curve reaches ``a``. The plain curve is piecewise linear in
log(pairs), as the study's figure draws it, and ``m`` is its *first* crossing of ``a``: the fewest
plain pairs that reach that accuracy, so a plain curve that dips later (seed noise) does not move
it. Outside the plain curve's range the factor is a bound: above every plain point it is at least
``largest / n`` (more plain pairs than were tried), at or below the first point at most
``smallest / n``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Relation = Literal["=", ">", "<="]


@dataclass(frozen=True)
class Equivalence:
    size: int  # training pairs with critiques
    accuracy: float  # reached with them
    plain_pairs: float  # plain pairs that reach it (the bound, when ``relation`` is not "=")
    relation: Relation  # the true number of plain pairs is =, > or <= ``plain_pairs``

    @property
    def factor(self) -> float:
        return self.plain_pairs / self.size

    def describe(self) -> str:
        prefix = {"=": "", ">": "> ", "<=": "<= "}[self.relation]
        return f"{prefix}{self.factor:.3g}x"


def plain_pairs_reaching(
    accuracy: float, sizes: Sequence[int], accuracies: Sequence[float]
) -> tuple[float, Relation]:
    """The fewest plain pairs at which the plain curve ``(sizes, accuracies)`` reaches ``accuracy``,
    and whether that number is exact (``=``) or a bound (``>`` the largest size, ``<=`` the smallest)."""
    if len(sizes) != len(accuracies) or not sizes:
        raise ValueError("the plain curve needs as many accuracies as sizes, and at least one point")
    points = sorted(zip(sizes, accuracies))
    if points[0][1] >= accuracy:
        return float(points[0][0]), "<="
    for (s0, p0), (s1, p1) in zip(points, points[1:]):
        if p0 < accuracy <= p1:
            t = (accuracy - p0) / (p1 - p0)
            return math.exp(math.log(s0) + t * (math.log(s1) - math.log(s0))), "="
    return float(points[-1][0]), ">"


def equivalence_factors(
    sizes: Sequence[int], accuracies: Sequence[float], plain_sizes: Sequence[int],
                        plain_accuracies: Sequence[float]
) -> list[Equivalence]:
    """One :class:`Equivalence` per point of the critique curve, against the plain curve."""
    found = []
    for size, accuracy in sorted(zip(sizes, accuracies)):
        pairs, relation = plain_pairs_reaching(accuracy, plain_sizes, plain_accuracies)
        found.append(Equivalence(size=size, accuracy=accuracy, plain_pairs=pairs, relation=relation))
    return found


def describe_range(points: Sequence[Equivalence]) -> str:
    """``"2.1x to > 16x"``: the smallest and largest factor over the sizes, bounds marked."""
    if not points:
        return "none"
    ordered = sorted(points, key=lambda e: (e.factor, {"<=": 0, "=": 1, ">": 2}[e.relation]))
    low, high = ordered[0].describe(), ordered[-1].describe()
    return low if low == high else f"{low} to {high}"
