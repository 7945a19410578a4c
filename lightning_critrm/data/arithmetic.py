"""The quickstart's preference set: arithmetic questions with a checker that knows the answer.

Each pair holds a correct and an incorrect completion of the same question, written the same way
so only the number differs, and one critique per completion written by a checker that recomputes
the answer. Without critiques a reward model must do the arithmetic itself; with them it can read
the checker's verdict, which is exactly the effect the paper reports for good critiques.
Generated from a seed, so every machine builds the same rows with no download.
"""

from __future__ import annotations

import random

from lightning_critrm.errors import InputError
from lightning_critrm.records import PreferencePair

_ANSWER_STYLES = (
    "{expr} = {value}. The answer is {value}.",
    "Let me work it out: {expr} = {value}. So the result is {value}.",
    "The answer is {value}, because {expr} = {value}.",
)


def _question(rng: random.Random) -> tuple[str, str, int]:
    kind = rng.choice(("add", "sub", "mul", "word"))
    if kind == "add":
        a, b = rng.randint(10, 999), rng.randint(10, 999)
        return f"What is {a} + {b}?", f"{a} + {b}", a + b
    if kind == "sub":
        a, b = rng.randint(100, 999), rng.randint(10, 99)
        return f"What is {a} - {b}?", f"{a} - {b}", a - b
    if kind == "mul":
        a, b = rng.randint(3, 29), rng.randint(3, 29)
        return f"What is {a} times {b}?", f"{a} x {b}", a * b
    price, count = rng.randint(2, 95), rng.randint(2, 12)
    return (
        f"A pencil costs {price} cents. How many cents do {count} pencils cost?",
        f"{count} x {price}",
        price * count,
    )


def _critique(expr: str, truth: int, given: int) -> str:
    head = "Instruction following: the response answers the question that was asked."
    style = "Style: short and clear, shows the calculation."
    if given == truth:
        body = f"Correctness: recomputing {expr} gives {truth}; the response's answer {given} is correct."
    else:
        body = (
            f"Correctness: recomputing {expr} gives {truth}; the response's answer {given} is wrong "
            f"(off by {given - truth:+d})."
        )
    return f"{head}\n{body}\n{style}"


def arithmetic_pairs(num_pairs: int = 480, seed: int = 0) -> list[PreferencePair]:
    """``num_pairs`` pairs over distinct questions; same seed, same rows."""
    rng = random.Random(seed)
    seen: set[str] = set()
    pairs = []
    while len(pairs) < num_pairs:
        question, expr, truth = _question(rng)
        if question in seen:
            continue
        seen.add(question)
        wrong = truth + rng.choice((-10, -2, -1, 1, 2, 10))
        style = rng.choice(_ANSWER_STYLES)
        pairs.append(
            PreferencePair(
                prompt=({"role": "user", "content": question},),
                chosen=style.format(expr=expr, value=truth),
                rejected=style.format(expr=expr, value=wrong),
                chosen_critique=_critique(expr, truth, truth),
                rejected_critique=_critique(expr, truth, wrong),
            )
        )
    return pairs


BUILTIN_SETS = {"arithmetic": arithmetic_pairs}


def builtin_pairs(spec: str, seed: int = 0) -> list[PreferencePair]:
    """``arithmetic`` (480 pairs) or ``arithmetic:N`` (the first N of the same sequence)."""
    name, _, count = spec.partition(":")
    if name not in BUILTIN_SETS:
        raise InputError(f"unknown built-in data set {name!r}; known: {sorted(BUILTIN_SETS)}")
    if count and not count.isdigit():
        raise InputError(f"built-in data set size must be a whole number, got {count!r} in {spec!r}")
    return BUILTIN_SETS[name](seed=seed, **({"num_pairs": int(count)} if count else {}))
