"""Copy the sign scenes of chosen words out of `imagen dataset synth` folders into one imagefolder.

Dev-only (Python), for the nineteenth chunk's four-word experiment (training/README.md):

    python3 training/sign_subset.py OUT_DIR SRC_DIR [SRC_DIR ...] --words LOVE HELLO CAT MOON
"""
import argparse
import json
import os
import shutil

ap = argparse.ArgumentParser()
ap.add_argument('out')
ap.add_argument('src', nargs='+')
ap.add_argument('--words', nargs='+', required=True)
a = ap.parse_args()
words = set(a.words)
os.makedirs(a.out, exist_ok=True)
rows = []
for src in a.src:
    tag = os.path.basename(os.path.normpath(src))
    with open(os.path.join(src, 'metadata.jsonl')) as f:
        for line in f:
            r = json.loads(line)
            sign = r['scene'].get('sign')
            if not sign or sign['word'] not in words:
                continue
            name = f'{tag}-{r["file_name"]}'
            shutil.copyfile(os.path.join(src, r['file_name']), os.path.join(a.out, name))
            r['file_name'] = name
            rows.append(json.dumps(r))
tmp = os.path.join(a.out, 'metadata.jsonl.tmp')
with open(tmp, 'w') as f:
    f.write('\n'.join(rows) + '\n')
os.replace(tmp, os.path.join(a.out, 'metadata.jsonl'))
print(f'{len(rows)} sign scenes of {sorted(words)} -> {a.out}')
