#!/usr/bin/env python3
"""Where does a model put the two objects of a relation prompt? Dev-only, reads an
`imagen eval --kinds relation --report DIR` report (no model needed).

For each relation word it prints the mean offset (x, y; fractions of the image side, y down) from
the second-named object to the first-named one, over the prompts where the checker found both
colours: "a red circle left of a blue square" should give dx near −0.45 (what true renders show,
`imagen eval --ground-truth`), and a model that ignores the relation word gives dx and dy near 0.

  python3 training/relation_offsets.py /work/evals/rel-shipped
"""

import collections
import json
import re
import sys

WORDS = {"left of": "left of", "right of": "right of", "above": "above", "on top of": "above", "over": "above",
         "below": "below", "under": "below", "beneath": "below"}
COLOURS = "red green blue yellow orange purple pink cyan white black gray brown".split()


def colour(phrase: str):
    found = [c for c in COLOURS if re.search(rf"\b{c}\b", phrase)]
    return found[0] if found else None


def main() -> int:
    report = json.load(open(f"{sys.argv[1]}/report.json"))
    offsets = collections.defaultdict(list)
    for r in report["results"]:
        p = r["prompt"]
        hit = next(((w, k) for w, k in WORDS.items() if f" {w} " in p), None)
        if not hit:
            continue
        first, second = p.split(f" {hit[0]} ", 1)
        c0, c1 = colour(first), colour(second)
        if not c0 or not c1 or c0 == c1:
            continue
        found = [re.match(r"(\w+) (\w+) (\w+) at \(([\d.]+), ([\d.]+)\)", d) for d in r["detected"]]
        found = [m.groups() for m in found if m]
        a = [(float(m[3]), float(m[4])) for m in found if m[1] == c0]
        b = [(float(m[3]), float(m[4])) for m in found if m[1] == c1]
        if not a or not b:
            continue
        mean = lambda pts, k: sum(p[k] for p in pts) / len(pts)
        offsets[hit[1]].append((mean(a, 0) - mean(b, 0), mean(a, 1) - mean(b, 1)))
    out = {}
    for k, v in sorted(offsets.items()):
        out[k] = {"n": len(v), "dx": round(sum(x for x, _ in v) / len(v), 2), "dy": round(sum(y for _, y in v) / len(v), 2)}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
