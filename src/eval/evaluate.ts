import type { Scene } from '../data/synth/scene.js';
import type { RgbImage } from '../io/image.js';
import {
  type Attribute,
  type CheckResult,
  checkImage,
  type Summary,
  summarise,
  type Verdicts,
  type WordReader,
} from './checker.js';

export interface EvalItem {
  index: number;
  prompt: string;
  scene: Scene;
  image: RgbImage;
}

export interface EvalRecord {
  index: number;
  prompt: string;
  pass: boolean;
  verdicts: Verdicts;
  ocrText?: string;
  /** What the checker saw: one line per detected component. */
  detected: string[];
}

export function describeDetections(r: CheckResult): string[] {
  return r.detected.map(
    (d) =>
      `${d.size} ${d.colour} ${d.shape} at (${d.cx.toFixed(2)}, ${d.cy.toFixed(2)}) fit ${d.shapeScore.toFixed(2)}`,
  );
}

/** Failed attributes, for contact-sheet notes ("colour, relation" or "read: HELO"). */
export function failureNote(r: EvalRecord): string | undefined {
  if (r.pass) return undefined;
  const failed = (Object.entries(r.verdicts) as [Attribute, boolean][])
    .filter(([, ok]) => !ok)
    .map(([k]) => k);
  const read = r.verdicts.word === false ? ` read "${r.ocrText ?? ''}"` : '';
  return `✗ ${failed.join(', ')}${read}`;
}

/** Check every item against its own scene; returns per-item records and the summary. */
export async function scoreItems(
  items: readonly EvalItem[],
  readWord: WordReader | undefined,
  onProgress?: (done: number, total: number) => void,
): Promise<{ records: EvalRecord[]; summary: Summary }> {
  const records: EvalRecord[] = [];
  for (const [i, it] of items.entries()) {
    const r = await checkImage(it.scene, it.image, readWord);
    records.push({
      index: it.index,
      prompt: it.prompt,
      pass: r.pass,
      verdicts: r.verdicts,
      ...(r.ocrText !== undefined ? { ocrText: r.ocrText } : {}),
      detected: describeDetections(r),
    });
    onProgress?.(i + 1, items.length);
  }
  return { records, summary: summarise(records) };
}

/**
 * Pair every image with another item's scene and prompt (a rotation by one, so no image keeps
 * its own caption): the checker's false-positive rate on mismatched pairs.
 */
export function shuffleCaptions(items: readonly EvalItem[]): EvalItem[] {
  const n = items.length;
  return items.map((it, i) => {
    const other = items[(i + 1) % n]!;
    return { index: it.index, prompt: other.prompt, scene: other.scene, image: it.image };
  });
}

/** One-line human summary: "whole 98.3 % | count 100 % colour 99 % …". */
export function formatSummary(s: Summary): string {
  const pct = (x: number) => `${(100 * x).toFixed(1)} %`;
  const parts = Object.entries(s.perAttribute).map(
    ([k, v]) => `${k} ${pct(v.accuracy)} (${v.correct}/${v.total})`,
  );
  return `whole prompt ${pct(s.wholePrompt)} of ${s.n} | ${parts.join(' | ')}`;
}
