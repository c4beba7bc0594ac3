/** Progress on stderr while an image command runs, then its images and summary. */
import { basename, extname, join } from 'node:path';
import type { NDArray } from '../engine/ndarray.js';
import { tensorToImages } from '../io/image.js';
import type { ProgressEvent } from '../pipelines/events.js';
import { writePng } from '../platform/node/image.js';
import type { CommonFlags } from './image_flags.js';
import { ProgressBar } from './progress.js';

/** out.png → out.png, out-1.png, … for several images. */
function outputPaths(out: string, n: number): string[] {
  if (n === 1) return [out];
  const ext = extname(out) || '.png';
  const stem = join(out.slice(0, out.length - basename(out).length), basename(out, ext));
  return Array.from({ length: n }, (_, i) => `${stem}-${i}${ext}`);
}

/** One progress bar per stage on stderr (nothing with --quiet/--json or off a terminal). */
function progressBars(quiet: boolean): { onProgress: (e: ProgressEvent) => void; stop: () => void } {
  const bars = new Map<string, ProgressBar>();
  return {
    onProgress: (e) => {
      if (e.status === 'step') {
        let bar = bars.get(e.stage);
        if (!bar) {
          bar = new ProgressBar(e.stage, 't={t}', { quiet });
          bar.start(e.total, 0, { t: e.t });
          bars.set(e.stage, bar);
        }
        bar.update(e.step, { t: e.t });
      } else if (e.status === 'done') bars.get(e.stage)?.stop();
    },
    stop: () => {
      for (const b of bars.values()) b.stop();
    },
  };
}

/** Write the images, print the summary line or JSON. */
async function writeResults(
  f: CommonFlags,
  x: NDArray,
  t0: number,
  say: (m: string) => void,
  extra: Record<string, unknown> = {},
): Promise<void> {
  const images = tensorToImages(x);
  const paths = outputPaths(f.out, images.length);
  for (const [i, img] of images.entries()) await writePng(paths[i]!, img);
  const seconds = (performance.now() - t0) / 1000;
  if (f.json) {
    process.stdout.write(
      `${JSON.stringify({ prompt: f.prompt ?? null, seed: Number(f.seed), images: paths, width: images[0]!.width, height: images[0]!.height, seconds, ...extra })}\n`,
    );
  } else say(`wrote ${paths.join(', ')} (${images[0]!.width}×${images[0]!.height}, ${seconds.toFixed(1)} s)`);
}

/**
 * Run with progress bars (stopped however `run` ends), then write what it returns; the reported
 * time includes the model work but not the writing.
 */
export async function runWithProgress(
  f: CommonFlags,
  say: (m: string) => void,
  run: (onProgress: (e: ProgressEvent) => void) => Promise<NDArray>,
  extra: Record<string, unknown> = {},
): Promise<void> {
  const bars = progressBars(f.quiet || f.json);
  const t0 = performance.now();
  let out: NDArray;
  try {
    out = await run(bars.onProgress);
  } finally {
    bars.stop();
  }
  await writeResults(f, out, t0, say, extra);
}
