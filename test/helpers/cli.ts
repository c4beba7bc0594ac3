import { vi } from 'vitest';
import { main } from '../../src/cli/main.js';

/** Run `imagen ARGS` in-process, capturing what it writes to stdout and stderr. */
export async function runCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stderr = '';
  let stdout = '';
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  });
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout += String(chunk);
    return true;
  });
  try {
    const code = await main(['node', 'imagen', ...args]);
    return { code, stdout, stderr };
  } finally {
    e.mockRestore();
    o.mockRestore();
  }
}

/** `imagen train` arguments for a tiny run: a 16×16 base stage, by default 2 steps of batch 4, no progress bar. */
export function tinyTrainArgs(
  data: string,
  out: string,
  o: { steps?: number; batch?: number } = {},
): string[] {
  const steps = String(o.steps ?? 2);
  const batch = String(o.batch ?? 4);
  return [
    'train',
    '--data',
    data,
    '--out',
    out,
    '--resolution',
    '16',
    '--steps',
    steps,
    '--batch',
    batch,
    '--quiet',
  ];
}
