"""A leakage control for the data-efficiency study: the MT-Bench pairs with every critique sentence
that states a verdict removed.

The GPT-4 critiques of ../shared/data were written together with a 1-10 score; the score tags are
gone, but the prose often still says it ("I would rate this 9 out of 10", "the answer is
incorrect"), and a keyword rule on the two critiques alone picks the chosen side of 78% of the
pairs (../shared/data/README.md). A reward model reading them can learn the label from the words.
This script drops each sentence that holds a score or any judgement word (the README's rule's words
and their kin), keeps the rest (what the critique describes: what the answer does, what it
contains, what the reference says) and reports how much of the text survives and how often the
keyword rule still finds the chosen side. Rows, ids and order are unchanged, so the study's split
and subsamples are the same pairs.

    python benchmarks/strip_verdicts.py  # writes runs/mtbench_verdicts_stripped.jsonl
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO.parent / "shared" / "data" / "critiques" / "mtbench_vicuna_gpt4_critique_pairs.jsonl"

POSITIVE = (
    r"correct(ly)?|accurate(ly)?|helpful|good|great|excellent|well|relevant|precise|clear|thorough|detailed|"
    r"perfect|strong|high quality|comprehensive|satisf\w*|adequate\w*|appropriate\w*|effective\w*|"
    r"impressive\w*|sufficient\w*|proper\w*|acceptable|success\w*|useful|concise|fortunately|nicely"
)
NEGATIVE = (
    r"incorrect(ly)?|inaccura\w*|wrong(ly)?|errors?|erroneous|mistakes?|mistaken|fail(s|ed|ure)?|lacks?|lacking|"
    r"poor(ly)?|unhelpful|irrelevant|flaw(s|ed)?|missing|misses|weak|vague|incomplete|confus\w*|unclear|"
    r"does not|doesn't|did not|do not|not (provide|address|answer|follow|match)\w*|unsatisf\w*|inadequate\w*|"
    r"inappropriate\w*|ineffective\w*|insufficient\w*|improper\w*|unacceptable|unsuccessful\w*|useless|"
    r"misunderst\w*|misinterpret\w*|however|unfortunately|instead|only|fall(s)? short|should have|could have|"
    r"would have|low quality"
)
SCORE = (r"rat(e|ed|ing)|scores?|out of 10|/10|\d+\s*/\s*\d+|overall|in conclusion|in summary|"
         r"to summari[sz]e|verdict")
VERDICT = re.compile(rf"\b({POSITIVE}|{NEGATIVE}|{SCORE})\b", re.IGNORECASE)
POSITIVE_WORDS = re.compile(r"\b(correct|accurate|helpful|good)\b", re.IGNORECASE)
NEGATIVE_WORDS = re.compile(r"\b(incorrect|wrong|error|mistake|fails|lacks|poor)\b", re.IGNORECASE)
SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


def strip_verdicts(critique: str) -> str:
    kept = [s for s in SENTENCE.split(critique) if s.strip() and not VERDICT.search(s)]
    return " ".join(s.strip() for s in kept)


def keyword_score(critique: str) -> int:
    """The README's rule: judgement words for, minus twice the words against."""
    return len(POSITIVE_WORDS.findall(critique)) - 2 * len(NEGATIVE_WORDS.findall(critique))


def keyword_rule(rows: list[dict]) -> dict:
    wins = ties = 0
    for r in rows:
        gap = keyword_score(r["chosen_critique"]) - keyword_score(r["rejected_critique"])
        wins += gap > 0
        ties += gap == 0
    return {"chosen_side_picked": round(wins / len(rows), 4), "ties": round(ties / len(rows), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=SOURCE)
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "mtbench_verdicts_stripped.jsonl")
    args = parser.parse_args()
    rows = [json.loads(line) for line in args.source.read_text(encoding="utf-8").splitlines() if line.strip()]
    before = keyword_rule(rows)
    chars_before = sum(len(r["chosen_critique"]) + len(r["rejected_critique"]) for r in rows)
    for r in rows:
        for side in ("chosen_critique", "rejected_critique"):
            r[side] = strip_verdicts(r[side]) or "(no descriptive sentence)"
    chars_after = sum(len(r["chosen_critique"]) + len(r["rejected_critique"]) for r in rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    tmp.replace(args.out)
    empty = sum(r[s] == "(no descriptive sentence)" for r in rows for s in ("chosen_critique",
                                                                            "rejected_critique"))
    print(json.dumps({
        "out": str(args.out.relative_to(REPO)) if args.out.is_relative_to(REPO) else str(args.out),
                      "pairs": len(rows), "critique_chars_kept": round(chars_after / chars_before, 4),
        "critiques_left_empty": empty, "keyword_rule_before": before,
                      "keyword_rule_after": keyword_rule(rows),
    }, indent=1))


if __name__ == "__main__":
    main()
