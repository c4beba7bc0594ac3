import { createRequire } from 'node:module';
import sharp from 'sharp';
import { createWorker, OEM, PSM, type Worker } from 'tesseract.js';
import type { WordReader } from '../../eval/checker.js';
import type { RgbImage } from '../../io/image.js';

export interface WordOcr {
  read: WordReader;
  terminate(): Promise<void>;
}

/**
 * A Tesseract (tesseract.js) worker set up for one word of capitals, fully offline: the
 * traineddata comes from the @tesseract.js-data/eng npm package (the LSTM-only "best_int" model,
 * the smallest), and `cacheMethod: 'none'` stops tesseract.js writing a cached copy into the
 * working directory. Start once and reuse: initialisation takes about a second.
 */
export async function createWordOcr(): Promise<WordOcr> {
  const require = createRequire(import.meta.url);
  const eng = require('@tesseract.js-data/eng') as { langPath: string };
  const langPath = eng.langPath.replace(/4\.0\.0$/, '4.0.0_best_int');
  const worker: Worker = await createWorker('eng', OEM.LSTM_ONLY, {
    langPath,
    cacheMethod: 'none',
    gzip: true,
  });
  await worker.setParameters({
    tessedit_pageseg_mode: PSM.SINGLE_LINE,
    tessedit_char_whitelist: 'ABCDEFGHIJKLMNOPQRSTUVWXYZ',
    // Our crops carry no DPI; say 300 so Tesseract does not warn on every image.
    user_defined_dpi: '300',
    // Tesseract prints its internal statistics for blank crops; send them nowhere.
    debug_file: '/dev/null',
  });
  return {
    async read(img: RgbImage): Promise<string> {
      const png = await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } })
        .png()
        .toBuffer();
      const r = await worker.recognize(png);
      return r.data.text.trim();
    },
    async terminate() {
      await worker.terminate();
    },
  };
}
