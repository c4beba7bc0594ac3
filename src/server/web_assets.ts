import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface WebAsset {
  route: string;
  type: string;
  body: string;
}

const FILES: [route: string, file: string, type: string][] = [
  ['/', 'index.html', 'text/html; charset=utf-8'],
  ['/app.js', 'app.js', 'text/javascript; charset=utf-8'],
  ['/style.css', 'style.css', 'text/css; charset=utf-8'],
];

/**
 * The page's files, read once. They live next to this module in src/server/web; a build into
 * dist/ does not copy them, so dist falls back to the sources (the package ships both).
 */
export function webAssets(): WebAsset[] {
  const candidates = [
    new URL('./web/', import.meta.url),
    new URL('../../../src/server/web/', import.meta.url),
  ];
  const dir = candidates.map((u) => fileURLToPath(u)).find((d) => existsSync(`${d}index.html`));
  if (!dir) return [];
  return FILES.map(([route, file, type]) => ({ route, type, body: readFileSync(`${dir}${file}`, 'utf8') }));
}
