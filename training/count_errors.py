#!/usr/bin/env python3
"""Of a report's count errors, how many are too many objects and how many too few? Dev-only,
reads an `imagen eval --report DIR` report (no model needed).

Signs are left out (their count is the sign's). The asked-for number is the sum of the number
words ("a", "an", "one" … "four") in front of a shape noun; the drawn number is how many objects
the checker detected. With --by-count, also per (number of groups, number asked): prompts, too
many, too few.

  python3 training/count_errors.py /work/evals/ship14/s1p-42k
  python3 training/count_errors.py --by-count /work/evals/s15/cnt-42k
"""

import json
import re
import sys

NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4}
SHAPES = "circle|square|triangle|star|diamond|cross|heart"  # src/data/synth/vocab.ts
ASKED = re.compile(r"\b(a|an|one|two|three|four)\b(?= (?:\w+ ){0,3}(?:%s)(?:es|s)?\b)" % SHAPES)

by_count = "--by-count" in sys.argv[1:]
for d in [a for a in sys.argv[1:] if a != "--by-count"]:
    report = json.load(open(d.rstrip("/") + "/report.json"))
    more = fewer = 0
    table = {}
    for r in report["results"]:
        if "sign" in r["prompt"]:
            continue
        words = ASKED.findall(r["prompt"])
        asked = sum(NUMBERS[w] for w in words)
        drawn = len(r["detected"])
        row = table.setdefault(f"{len(words)} groups, {asked} asked", [0, 0, 0])
        row[0] += 1
        if not r["verdicts"].get("count", True):
            more += drawn > asked
            fewer += drawn < asked
            row[1] += drawn > asked
            row[2] += drawn < asked
    out = {"report": d, "too_many": more, "too_few": fewer}
    if by_count:
        out["by_count"] = {k: dict(zip(("prompts", "too_many", "too_few"), v)) for k, v in sorted(table.items())}
    print(json.dumps(out))
