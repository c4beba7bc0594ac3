#!/usr/bin/env python3
"""Of a report's count errors, how many are too many objects and how many too few? Dev-only,
reads an `imagen eval --report DIR` report (no model needed).

Signs are left out (their count is the sign's). The asked-for number is the sum of the number
words ("a", "an", "one" … "four") in front of a shape noun; the drawn number is how many objects
the checker detected.

  python3 training/count_errors.py /work/evals/ship14/s1p-42k
"""

import json
import re
import sys

NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4}
SHAPES = "circle|square|triangle|star|diamond|cross|heart"  # src/data/synth/vocab.ts
ASKED = re.compile(r"\b(a|an|one|two|three|four)\b(?= (?:\w+ ){0,3}(?:%s)(?:es|s)?\b)" % SHAPES)

for d in sys.argv[1:]:
    report = json.load(open(d.rstrip("/") + "/report.json"))
    more = fewer = 0
    for r in report["results"]:
        if "sign" in r["prompt"] or r["verdicts"].get("count", True):
            continue
        asked = sum(NUMBERS[w] for w in ASKED.findall(r["prompt"]))
        drawn = len(r["detected"])
        more += drawn > asked
        fewer += drawn < asked
    print(json.dumps({"report": d, "too_many": more, "too_few": fewer}))
