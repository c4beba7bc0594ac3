#!/usr/bin/env python3
"""Does a text encoder say, in each noun's output vector, where that noun's object goes? Dev-only
(torch + transformers + tokenizers), not part of `npm test`.

For two-object relation captions of a synth folder ("a red circle to the left of a blue square"),
a linear probe (logistic regression, trained on 80 % of the captions, scored on the rest) reads the
side of the image each noun's group belongs on (left / right / top / bottom) from the encoder's
output at that noun. Chance is 0.25; an encoder whose UNet can place objects by their relation
should be near 1.

  python3 training/probe_encoder.py models/imagen-ts-shapes/base /work/data/s1rel
"""

import json
import sys

import torch
from tokenizers import Tokenizer
from transformers import T5EncoderModel

SIDE = {"left-of": 0, "right-of": 1, "above": 2, "below": 3}
OPPOSITE = {"left-of": "right-of", "right-of": "left-of", "above": "below", "below": "above"}
NOUNS = {"circle", "square", "triangle", "star", "heart", "cross", "diamond"}
NOUNS |= {n + "s" for n in NOUNS} | {"crosses"}


def main() -> int:
    model, data = sys.argv[1], sys.argv[2]
    limit = int(sys.argv[3]) if len(sys.argv) > 3 else 4000
    enc = T5EncoderModel.from_pretrained(f"{model}/text_encoder").float().eval()
    tok = Tokenizer.from_file(f"{model}/tokenizer/tokenizer.json")
    feats, labels = [], []
    for line in open(f"{data}/metadata.jsonl"):
        row = json.loads(line)
        scene = row["scene"]
        if scene["kind"] != "relation":
            continue
        e = tok.encode(row["text"])
        nouns = [i for i, t in enumerate(e.tokens) if t in NOUNS]
        if len(nouns) != 2:
            continue
        with torch.no_grad():
            h = enc(input_ids=torch.tensor([e.ids])).last_hidden_state[0]
        g0 = scene["groups"][0]
        for i in nouns:
            # Captions may name group 1 first; the noun's colour word (just before it) tells which.
            first = e.tokens[i - 1] == g0["colour"] and e.tokens[i].startswith(g0["shape"])
            rel = scene["relation"] if first else OPPOSITE[scene["relation"]]
            feats.append(h[i])
            labels.append(SIDE[rel])
        if len(labels) >= 2 * limit:
            break
    x = torch.stack(feats)
    y = torch.tensor(labels)
    n = int(len(y) * 0.8)
    x = (x - x[:n].mean(0)) / (x[:n].std(0) + 1e-5)
    w = torch.zeros(x.shape[1], 4, requires_grad=True)
    b = torch.zeros(4, requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=0.05)
    for _ in range(300):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(x[:n] @ w + b, y[:n]) + 1e-3 * (w**2).sum()
        loss.backward()
        opt.step()
    acc = ((x[n:] @ w + b).argmax(1) == y[n:]).float().mean().item()
    print(json.dumps({"model": model, "nouns": len(y), "probe_accuracy": round(acc, 3), "chance": 0.25}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
