/**
 * The README's picture of the web page: `imagen serve` with the shipped model, one prompt
 * generated through the page in Chromium (playwright-core + Debian's chromium), a screenshot.
 * Dev-only; needs /usr/bin/chromium (or CHROMIUM_PATH).
 *
 *   npx tsx scripts/web-screenshot.ts [OUT.png]   (default docs/images/web-page.png)
 */
import { withShippedServer } from './shipped_server.js';

const out = process.argv[2] ?? 'docs/images/web-page.png';
await withShippedServer({ width: 1000, height: 820 }, async (base, browser) => {
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
});
console.log(`wrote ${out}`);
