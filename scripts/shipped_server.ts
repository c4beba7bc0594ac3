/**
 * For the dev scripts that drive the web page: `imagen serve` with the shipped model (browser mode
 * on, both stages) on a free local port, and a headless Chromium (playwright-core + Debian's
 * chromium, or CHROMIUM_PATH) with a throw-away profile. Everything is closed when `fn` settles.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, chromium } from 'playwright-core';
import { buildApp } from '../src/server/app.js';
import { PipelineGenerator } from '../src/server/generator.js';
import { InProcessQueue } from '../src/server/memory_queue.js';

export async function withShippedServer<T>(
  viewport: { width: number; height: number } | undefined,
  fn: (base: string, browser: BrowserContext) => Promise<T>,
): Promise<T> {
  const model = 'models/imagen-ts-shapes';
  const gen = await PipelineGenerator.load(join(model, 'base'), { srModel: join(model, 'sr') });
  const queue = new InProcessQueue(gen);
  const app = buildApp({ queue, browserModelDir: join(model, 'base'), browserSrModelDir: join(model, 'sr') });
  const profile = mkdtempSync(join(tmpdir(), 'imagen-web-'));
  try {
    const base = await app.listen({ host: '127.0.0.1', port: 0 });
    const browser = await chromium.launchPersistentContext(profile, {
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      ...(viewport && { viewport }),
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'],
    });
    try {
      return await fn(base, browser);
    } finally {
      await browser.close();
    }
  } finally {
    await app.close();
    await queue.close();
    await gen.close();
    rmSync(profile, { recursive: true, force: true });
  }
}
