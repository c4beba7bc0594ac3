/**
 * Browser mode vs server with the shipped model (the CI test checks the same with a tiny cascade):
 * `imagen serve` with models/imagen-ts-shapes, one prompt run in the page on onnxruntime-web
 * (stage I, then stage II to 256×256 with the folders' defaults), the same request on the server,
 * and the largest and mean pixel difference. Dev-only; needs /usr/bin/chromium (or CHROMIUM_PATH).
 *
 *   npx tsx scripts/web-parity.ts ["PROMPT"] [SEED]
 */
import sharp from 'sharp';
import { withShippedServer } from './shipped_server.js';

const prompt = process.argv[2] ?? 'a red circle to the left of a blue square';
const seed = Number(process.argv[3] ?? 0);
const rgb = (png: Buffer) => sharp(png).removeAlpha().raw().toBuffer({ resolveWithObject: true });
await withShippedServer(undefined, async (base, browser) => {
  const page = await browser.newPage();
  await page.goto(base);
  await page.locator('#browser-mode-row').waitFor({ state: 'visible' });
  await page.check('#browser-mode');
  await page.fill('#prompt', prompt);
  await page.locator('details summary').click();
  await page.fill('#seed', String(seed));
  let t = performance.now();
  await page.click('#generate');
  const card = page.locator('#gallery .card', { hasText: 'ran in this browser' }).first();
  await card.waitFor({ state: 'visible', timeout: 600_000 });
  const browserMs = performance.now() - t;
  const src = (await card.locator('img').getAttribute('src'))!;
  const inPage = await rgb(Buffer.from(src.split(',')[1]!, 'base64'));

  t = performance.now();
  const res = await fetch(`${base}/v1/generate`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt, seed }),
  });
  const { id } = (await res.json()) as { id: string };
  let images: string[] = [];
  while (images.length === 0) {
    images = ((await (await fetch(`${base}/v1/jobs/${id}`)).json()) as { images: string[] }).images;
    if (images.length === 0) await new Promise((r) => setTimeout(r, 100));
  }
  const serverMs = performance.now() - t;
  const server = await rgb(Buffer.from(await (await fetch(`${base}${images[0]}`)).arrayBuffer()));
  if (server.data.length !== inPage.data.length)
    throw new Error(`sizes differ: server ${server.info.width}, page ${inPage.info.width}`);
  let max = 0;
  let sum = 0;
  for (let i = 0; i < server.data.length; i++) {
    const d = Math.abs(server.data[i]! - inPage.data[i]!);
    max = Math.max(max, d);
    sum += d;
  }
  console.log(
    JSON.stringify({
      prompt,
      seed,
      size: server.info.width,
      max_pixel_difference: max,
      mean_pixel_difference: Number((sum / server.data.length).toFixed(4)),
      browser_ms: Math.round(browserMs),
      server_ms: Math.round(serverMs),
    }),
  );
});
