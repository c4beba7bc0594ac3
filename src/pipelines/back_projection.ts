/**
 * Back-projection (Irani & Peleg's iterative back-projection, one step): make a super-resolution
 * output agree with its low-res input at the low resolution. A small stage II can drift in flat
 * colours (a background shifted in hue, a red turned orange) that its low-res input does not have;
 * the residual `low − down(out)` holds exactly that drift, and adding it back upsampled corrects
 * the colours while leaving the detail the stage added above the low-res Nyquist limit.
 * No Node imports.
 */
import { ImagenError } from '../engine/errors.js';
import type { NDArray } from '../engine/ndarray.js';
import * as F from '../engine/ops/index.js';
import type { Runtime } from '../engine/runtime.js';

/**
 * `out` [N, C, H, W] in [−1, 1] corrected towards `lowRes` [N or 1, C, h, w]:
 * out + up(lowRes − down(out)), clipped to [−1, 1]. `up` is the bilinear align-corners resize the
 * pipeline conditions stage II with, `down` the area (box) filter over one low-res pixel.
 */
export async function backProject(rt: Runtime, out: NDArray, lowRes: NDArray): Promise<NDArray> {
  const [n, c, H, W] = out.shape as [number, number, number, number];
  const [ln, lc, h, w] = lowRes.shape as [number, number, number, number];
  if (
    out.shape.length !== 4 ||
    lowRes.shape.length !== 4 ||
    (ln !== n && ln !== 1) ||
    lc !== c ||
    h > H ||
    w > W
  ) {
    throw new ImagenError(
      'SHAPE_MISMATCH',
      `back-projection needs a smaller low-res image of the same batch and channels: output [${out.shape.join(', ')}], low-res [${lowRes.shape.join(', ')}]`,
    );
  }
  const f = rt.compile(
    ({ out: o, low }) => {
      const residual = F.sub(low!, F.resizeArea(o!, h, w));
      return F.minimum(F.maximum(F.add(o!, F.resizeBilinear(residual, H, W, true)), -1), 1);
    },
    { name: 'back_projection' },
  );
  try {
    return (await f.run({ out, low: lowRes })).output!;
  } finally {
    await f.release();
  }
}
