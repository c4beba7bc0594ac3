import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The model that ships inside the package: a stage-I folder, a stage-II folder and its card. */
export interface ShippedModel {
  name: string;
  root: string;
  base: string;
  sr: string;
  card: string;
}

export const SHIPPED_MODEL_NAME = 'imagen-ts-shapes';

/** The package root: the nearest folder above this file whose package.json names imagen-ts. */
function packageRoot(): string | undefined {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'imagen-ts') return dir;
      } catch {
        // an unreadable package.json further down (e.g. a fixture): keep walking up
      }
    }
    const up = dirname(dir);
    if (up === dir) return undefined;
    dir = up;
  }
}

/**
 * The shipped model, or undefined when this copy of the package has none (e.g. a clone where the
 * weights were removed). Works from the TypeScript sources (tsx) and from the built `dist/`.
 */
export function shippedModel(): ShippedModel | undefined {
  const pkg = packageRoot();
  if (!pkg) return undefined;
  const root = join(pkg, 'models', SHIPPED_MODEL_NAME);
  const m = {
    name: SHIPPED_MODEL_NAME,
    root,
    base: join(root, 'base'),
    sr: join(root, 'sr'),
    card: join(root, 'MODEL_CARD.md'),
  };
  return existsSync(join(m.base, 'model_index.json')) ? m : undefined;
}
