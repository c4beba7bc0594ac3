"""How close are a report's OCR reads to the sign's word, letter by letter? `imagen eval` scores a
word only when read exactly; this shows progress before that (training/README.md, nineteenth chunk).

Dev-only (Python):  python3 training/word_chars.py REPORT_DIR [REPORT_DIR ...] [--words W ...]
Per report: sign prompts (of --words, if given), mean difflib similarity of the read to the word,
and how many reads have at least two of the word's letters in order.
"""
import argparse
import difflib
import json
import os
import re

ap = argparse.ArgumentParser()
ap.add_argument('reports', nargs='+')
ap.add_argument('--words', nargs='*')
a = ap.parse_args()
for d in a.reports:
    with open(os.path.join(d, 'report.json')) as f:
        results = json.load(f)['results']
    sims, two = [], 0
    for r in results:
        if 'word' not in r['verdicts']:
            continue
        word = re.findall(r'\b[A-Z]{2,}\b', r['prompt'])[0]
        if a.words and word not in a.words:
            continue
        read = re.sub('[^A-Z]', '', r.get('ocrText') or '')
        m = difflib.SequenceMatcher(None, word, read)
        sims.append(m.ratio())
        two += sum(b.size for b in m.get_matching_blocks()) >= 2
    mean = sum(sims) / len(sims) if sims else float('nan')
    print(json.dumps({'report': d, 'signs': len(sims), 'charSimilarity': round(mean, 3), 'twoLettersInOrder': two}))
