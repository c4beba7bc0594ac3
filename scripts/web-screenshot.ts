/**
 * The README's picture of the web page: `imagen serve` with the shipped model, one prompt
 * generated through the page in Chromium (playwright-core + Debian's chromium), a screenshot.
 * Dev-only; needs /usr/bin/chromium (or CHROMIUM_PATH).
 *
 *   npx tsx scripts/web-screenshot.ts [OUT.png]   (default docs/images/web-page.png)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { buildApp } from '../src/server/app.js';
import { PipelineGenerator } from '../src/server/generator.js';
import { InProcessQueue } from '../src/server/memory_queue.js';

const out = process.argv[2] ?? 'docs/images/web-page.png';
const model = 'models/imagen-ts-shapes';
const gen = await PipelineGenerator.load(join(model, 'base'), { srModel: join(model, 'sr') });
const queue = new InProcessQueue(gen);
const app = buildApp({ queue, browserModelDir: join(model, 'base'), browserSrModelDir: join(model, 'sr') });
const profile = mkdtempSync(join(tmpdir(), 'web-shot-'));
try {
  const base = await app.listen({ host: '127.0.0.1', port: 0 });
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    viewport: { width: 1000, height: 820 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
  });
  const page = await browser.newPage();
  await page.goto(base);
  await page.fill('#prompt', 'a red circle to the left of a blue square');
  await page.locator('details summary').click();
  await page.fill('#seed', '0');
  await page.click('#generate');
  await page.locator('#gallery img.result').first().waitFor({ state: 'visible', timeout: 120_000 });
  await page.waitForFunction(
    "(() => { const img = document.querySelector('#gallery img.result'); return img && img.complete && img.naturalWidth > 0; })()",
  );
  await page.screenshot({ path: out });
  await browser.close();
  console.log(`wrote ${out}`);
} finally {
  await app.close();
  await queue.close();
  await gen.close();
  rmSync(profile, { recursive: true, force: true });
}
