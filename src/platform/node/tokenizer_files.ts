/**
 * Node-side tokenizer folder loading: reads the files of a `tokenizer/` (or model) folder and hands
 * their contents to the browser-safe {@link createTokenizer}.
 *
 * Preference: `tokenizer.json` (fast tokenizer) → `spiece.model` (+ `tokenizer_config.json`,
 * `special_tokens_map.json`) → ByT5 when `tokenizer_config.json` / `config.json` name
 * `ByT5Tokenizer`.
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ImagenError } from '../../engine/errors.js';
import {
  createTokenizer,
  type JsonObject,
  type TextTokenizer,
  type TokenizerFiles,
} from '../../text/tokenizer.js';

async function exists(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

async function readJson(path: string): Promise<JsonObject | undefined> {
  if (!(await exists(path))) return undefined;
  const text = await readFile(path, 'utf8');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new ImagenError('FILE_INVALID', `${path}: not valid JSON (${(e as Error).message})`, { cause: e });
  }
  if (!value || typeof value !== 'object' || Array.isArray(value)) {
    throw new ImagenError('FILE_INVALID', `${path}: expected a JSON object`);
  }
  return value as JsonObject;
}

/**
 * Load the tokenizer stored in `dir`. Throws `NOT_FOUND` (listing what was looked for) when the
 * folder holds none, `FILE_INVALID` for a corrupt `spiece.model` / `tokenizer.json`.
 */
export async function loadTokenizer(dir: string): Promise<TextTokenizer> {
  let isDir = false;
  try {
    isDir = (await stat(dir)).isDirectory();
  } catch {
    isDir = false;
  }
  if (!isDir)
    throw new ImagenError('NOT_FOUND', `tokenizer folder ${dir} does not exist or is not a directory`);

  const files: TokenizerFiles = { source: dir };
  const tokenizerConfig = await readJson(join(dir, 'tokenizer_config.json'));
  if (tokenizerConfig) files.tokenizerConfig = tokenizerConfig;
  const specialTokensMap = await readJson(join(dir, 'special_tokens_map.json'));
  if (specialTokensMap) files.specialTokensMap = specialTokensMap;
  const config = await readJson(join(dir, 'config.json'));
  if (config) files.config = config;

  const tokenizerJson = await readJson(join(dir, 'tokenizer.json'));
  if (tokenizerJson) files.tokenizerJson = tokenizerJson;
  else if (await exists(join(dir, 'spiece.model'))) {
    files.spieceModel = new Uint8Array(await readFile(join(dir, 'spiece.model')));
  }
  try {
    return createTokenizer(files);
  } catch (e) {
    if (e instanceof ImagenError && e.code === 'NOT_FOUND') {
      throw new ImagenError(
        'NOT_FOUND',
        `no tokenizer in ${dir}: looked for tokenizer.json, spiece.model, and tokenizer_config.json / config.json with tokenizer_class "ByT5Tokenizer"`,
      );
    }
    throw e;
  }
}
