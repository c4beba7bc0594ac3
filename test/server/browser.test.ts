/**
 * The web page in real Chromium (playwright-core driving Debian's chromium): one full generation
 * through the page against a server running a tiny cascade (stage I + II), a screenshot, and a
 * check that the result is not blank; then browser mode, the same cascade run in the page and
 * compared with the server's. Skipped, with a message, where /usr/bin/chromium is missing;
 * scripts/test-integration.sh installs it and runs this file.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { type BrowserContext, chromium } from 'playwright-core';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/server/app.js';
import { PipelineGenerator } from '../../src/server/generator.js';
import { InProcessQueue } from '../../src/server/memory_queue.js';
import { writeTinyModel, writeTinySrModel } from '../../src/server/tiny_model.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const hasChromium = existsSync(CHROMIUM);
// scripts/test-integration.sh sets IMAGEN_INTEGRATION=1: there a missing chromium is a failure, not a skip.
if (!hasChromium && process.env.IMAGEN_INTEGRATION === '1')
  throw new Error('chromium is required here (scripts/test-integration.sh installs it)');
if (!hasChromium)
  console.warn(`SKIPPED test/server/browser.test.ts: no ${CHROMIUM} (run scripts/test-integration.sh)`);

/** Screenshots land here so that a person (or the README) can look at them. */
const SHOTS = join(process.cwd(), 'tmp', 'server-screenshots');

function variance(data: Uint8Array | Buffer): number {
  let mean = 0;
  for (const v of data) mean += v;
  mean /= data.length;
  let s = 0;
  for (const v of data) s += (v - mean) ** 2;
  return s / data.length;
}

describe.skipIf(!hasChromium)('web page in Chromium', () => {
  const dir = mkdtempSync(join(tmpdir(), 'serve-browser-'));
  let gen: PipelineGenerator;
  let queue: InProcessQueue;
  let app: FastifyInstance;
  let browser: BrowserContext;
  let base = '';

  beforeAll(async () => {
    // A cascade, as the shipped model: stage I 16×16 → stage II 32×32 (own text encoder, tiles).
    await writeTinyModel(join(dir, 'tiny'));
    await writeTinySrModel(join(dir, 'tiny-sr'));
    gen = await PipelineGenerator.load(join(dir, 'tiny'), { srModel: join(dir, 'tiny-sr') });
    queue = new InProcessQueue(gen);
    app = buildApp({
      queue,
      browserModelDir: join(dir, 'tiny'),
      browserSrModelDir: join(dir, 'tiny-sr'),
    });
    base = await app.listen({ host: '127.0.0.1', port: 0 });
    // A fresh profile directory per run: nothing cached from an earlier page version.
    browser = await chromium.launchPersistentContext(join(dir, 'profile'), {
      executablePath: CHROMIUM,
      viewport: { width: 1000, height: 800 },
      // Offline and quiet: no network services, no GPU (CI machines have none), fresh profile.
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    mkdirSync(SHOTS, { recursive: true });
  });

  afterAll(async () => {
    await browser?.close();
    await app?.close();
    await queue?.close();
    await gen?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('submits a prompt, shows live previews, and adds a non-blank result to the gallery', async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    // Every request the page makes must go to this server (no CDN).
    const foreign: string[] = [];
    page.on('request', (r) => {
      if (!r.url().startsWith(base) && !r.url().startsWith('data:')) foreign.push(r.url());
    });
    await page.goto(base);
    await expect.poll(() => page.locator('#model-info').textContent()).toContain('tiny');
    await page.fill('#prompt', 'a red circle to the left of a blue square');
    await page.locator('details summary').click();
    await page.fill('#steps', '200');
    await page.fill('#seed', '42');
    // Record every preview the page shows: the image must change while it denoises. (Page code is
    // passed as strings: this project compiles without the DOM types.)
    await page.evaluate(`
      window.previews = [];
      const el = document.getElementById('preview');
      new MutationObserver(() => window.previews.push(el.src)).observe(el, { attributes: true, attributeFilter: ['src'] });
    `);
    await page.click('#generate');
    const result = page.locator('#gallery img.result').first();
    await result.waitFor({ state: 'visible', timeout: 60_000 });
    await page.waitForFunction(
      "(() => { const img = document.querySelector('#gallery img.result'); return img && img.complete && img.naturalWidth > 0; })()",
    );
    expect(await page.locator('#message').textContent()).toMatch(/done/);
    const previews = (await page.evaluate('window.previews')) as string[];
    expect(previews.length).toBeGreaterThanOrEqual(3);
    expect(new Set(previews).size).toBeGreaterThan(1);
    expect(await page.locator('#gallery .card').textContent()).toContain('seed 42');
    const href = await page.locator('#gallery a[download]').first().getAttribute('href');
    expect(href).toMatch(/^\/v1\/jobs\/[0-9a-f-]+\/images\/0\.png$/);

    await page.screenshot({ path: join(SHOTS, 'page.png'), fullPage: true });
    const shot = await result.screenshot({ path: join(SHOTS, 'result.png') });
    const { data } = await sharp(shot).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    expect(variance(data)).toBeGreaterThan(0);
    // The PNG behind the download link is not blank either.
    const png = Buffer.from(await (await fetch(`${base}${href}`)).arrayBuffer());
    expect(variance((await sharp(png).raw().toBuffer({ resolveWithObject: true })).data)).toBeGreaterThan(0);
    expect(errors).toEqual([]);
    expect(foreign).toEqual([]);
    await page.close();
  });

  it('browser mode: runs the cascade in the page (onnxruntime-web) and matches the server', async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    const foreign: string[] = [];
    page.on('request', (r) => {
      if (!r.url().startsWith(base) && !r.url().startsWith('data:') && !r.url().startsWith('blob:'))
        foreign.push(r.url());
    });
    await page.goto(base);
    await page.locator('#browser-mode-row').waitFor({ state: 'visible' });
    await page.check('#browser-mode');
    await page.fill('#prompt', 'a green triangle');
    await page.locator('details summary').click();
    await page.fill('#steps', '20');
    await page.fill('#seed', '9');
    await page.evaluate(`
      window.stageLabels = [];
      const el = document.getElementById('stage');
      new MutationObserver(() => window.stageLabels.push(el.textContent)).observe(el, { childList: true, characterData: true, subtree: true });
    `);

    /** Generate in the page with the form as it is; the newest in-page result as raw RGB. */
    const runInPage = async (n: number) => {
      await page.click('#generate');
      const cards = page.locator('#gallery .card', { hasText: 'ran in this browser' });
      await expect.poll(() => cards.count(), { timeout: 120_000 }).toBe(n);
      expect(await page.locator('#message').textContent()).toMatch(/done in this browser/);
      const src = (await cards.first().locator('img').getAttribute('src'))!;
      expect(src).toMatch(/^data:image\/png;base64,/);
      return sharp(Buffer.from(src.split(',')[1]!, 'base64'))
        .removeAlpha()
        .raw()
        .toBuffer({ resolveWithObject: true });
    };
    /** The same request on the server: same sampler and noise, another ONNX Runtime build. */
    const runOnServer = async (extra: Record<string, unknown>) => {
      const res = await fetch(`${base}/v1/generate`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ prompt: 'a green triangle', steps: 20, seed: 9, guidance_scale: 7, ...extra }),
      });
      const { id } = (await res.json()) as { id: string };
      let images: string[] = [];
      for (let i = 0; i < 1200 && images.length === 0; i++) {
        images = ((await (await fetch(`${base}/v1/jobs/${id}`)).json()) as { images: string[] }).images;
        if (images.length === 0) await new Promise((r) => setTimeout(r, 50));
      }
      return sharp(Buffer.from(await (await fetch(`${base}${images[0]}`)).arrayBuffer()))
        .raw()
        .toBuffer({ resolveWithObject: true });
    };
    const maxDiff = (a: Uint8Array, b: Uint8Array) => {
      expect(a.length).toBe(b.length);
      let d = 0;
      for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
      return d;
    };

    // The size the page offers first is the cascade's: stage I, then stage II with its folder's
    // own text encoder, noise level, sampler and tiles, as the server samples it.
    const cascade = await runInPage(1);
    expect([cascade.info.width, cascade.info.height]).toEqual([32, 32]);
    expect(variance(cascade.data)).toBeGreaterThan(0);
    await page
      .locator('#gallery .card')
      .first()
      .screenshot({ path: join(SHOTS, 'browser-mode.png') });
    const labels = (await page.evaluate('window.stageLabels')) as string[];
    expect(labels).toContain('in this browser: stage I: step 20 / 20');
    expect(labels).toContain('in this browser: stage II: step 8 / 8');
    const server = await runOnServer({});
    expect([server.info.width, server.info.height]).toEqual([32, 32]);
    const diff = maxDiff(server.data, cascade.data);
    console.log(`browser mode vs server, stage I + II: max pixel difference ${diff}/255`);
    expect(diff).toBeLessThanOrEqual(3);

    // Stage I's size alone, as the server's `size` does.
    await page.selectOption('#size', '16');
    const alone = await runInPage(2);
    expect([alone.info.width, alone.info.height]).toEqual([16, 16]);
    const diff1 = maxDiff((await runOnServer({ size: 16 })).data, alone.data);
    console.log(`browser mode vs server, stage I alone: max pixel difference ${diff1}/255`);
    expect(diff1).toBeLessThanOrEqual(3);
    expect(errors).toEqual([]);
    expect(foreign).toEqual([]);
    await page.close();
  });

  it('shows the server-named field when a parameter is refused', async () => {
    const page = await browser.newPage();
    await page.goto(base);
    await page.fill('#prompt', 'x');
    await page.locator('details summary').click();
    await page.fill('#steps', '5000');
    // The browser's own form validation would stop this first; the server check is what is tested.
    await page.evaluate("document.getElementById('form').setAttribute('novalidate', '')");
    await page.click('#generate');
    await expect
      .poll(() => page.locator('#message').textContent())
      .toMatch(/^steps: steps must be in 1\.\.1000/);
    await page.close();
  });
});
