import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ImagenError } from '../../engine/errors.js';

export async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

/** Read and parse a JSON file with errors that name the file. */
export async function readJson(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ImagenError(
      'NOT_FOUND',
      `${path}: ${code === 'ENOENT' ? 'file not found' : (e as Error).message}`,
    );
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ImagenError('FILE_INVALID', `${path}: not valid JSON (${(e as Error).message})`);
  }
}

/** config.json of a model folder, with a clear error when the folder is missing or is not a model. */
export async function readModelConfig(dir: string): Promise<Record<string, unknown>> {
  if (!(await isDirectory(dir))) throw new ImagenError('NOT_FOUND', `${dir}: no such folder`);
  const cfg = await readJson(join(dir, 'config.json'));
  if (typeof cfg !== 'object' || cfg === null || Array.isArray(cfg)) {
    throw new ImagenError('FILE_INVALID', `${join(dir, 'config.json')}: expected a JSON object`);
  }
  return cfg as Record<string, unknown>;
}
