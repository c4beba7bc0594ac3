import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** ../shared/fixtures beside the checkout (read in place, never copied into the repo). */
export const FIXTURES_DIR = resolve(repoRoot, '..', 'shared', 'fixtures');

/**
 * Path of a fixture folder or file, or `undefined` when it is absent (a user's own clone).
 * Tests call `describe.skipIf(!p)` with it; under CI=true a missing fixture is a failure,
 * so the suite cannot pass by skipping its parity checks.
 */
export function fixture(rel: string): string | undefined {
  const p = join(FIXTURES_DIR, rel);
  if (existsSync(p)) return p;
  if (process.env.CI === 'true') {
    throw new Error(`fixture ${p} is missing: CI requires ../shared/fixtures (see DEVELOPERS.md)`);
  }
  console.warn(`[imagen-ts] SKIPPING tests that need fixture ${rel}: ${p} not found`);
  return undefined;
}
