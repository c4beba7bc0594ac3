/**
 * Folders a test file shares between its tests: made before they run, removed after. The objects
 * returned are filled in by then, so read their fields inside tests and hooks only.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { buildTinyIfFolders, type TinyIfFolders } from './tiny_if.js';
import { buildTinySdx4Folder, type TinySdx4Folder } from './tiny_sdx4.js';

function perFile<T extends { cleanup(): void }>(make: () => T | undefined | Promise<T | undefined>): T {
  const live = {} as T;
  beforeAll(async () => {
    Object.assign(live, await make());
  });
  afterAll(() => live.cleanup?.());
  return live;
}

export function useTinyIfFolders(): TinyIfFolders {
  return perFile(buildTinyIfFolders);
}

/** Without the SD x4 fixture its fields stay unset (the tests that read them are skipped then). */
export function useTinySdx4Folder(): TinySdx4Folder {
  return perFile(buildTinySdx4Folder);
}

export interface TmpDir {
  path: string;
  /** `name` inside the folder. */
  file(name: string): string;
  cleanup(): void;
}

export function useTmpDir(prefix: string): TmpDir {
  return perFile(() => {
    const path = mkdtempSync(join(tmpdir(), prefix));
    return {
      path,
      file: (name: string) => join(path, name),
      cleanup: () => rmSync(path, { recursive: true, force: true }),
    };
  });
}
