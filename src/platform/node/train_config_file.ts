import { dirname, resolve } from 'node:path';
import { ImagenError } from '../../engine/errors.js';
import { mergeConfigJson, parseTrainConfig, type TrainConfig } from '../../train/config.js';
import { readJson } from './config.js';

/**
 * A guard against runaway chains (a loop is caught by name); recipes that each change one thing
 * grow long chains: the repository's own reached ten files.
 */
const MAX_EXTENDS = 64;

/**
 * Paths inside a config file are relative to that file, so a committed recipe runs from anywhere;
 * they are made absolute before files are merged, since a base may live in another folder.
 */
function absolutePaths(json: Record<string, unknown>, dir: string): Record<string, unknown> {
  const out = { ...json };
  const tok = json.tokenizer as Record<string, unknown> | undefined;
  if (tok && typeof tok === 'object' && typeof tok.path === 'string')
    out.tokenizer = { ...tok, path: resolve(dir, tok.path) };
  if (typeof json.text_encoder_from === 'string')
    out.text_encoder_from = resolve(dir, json.text_encoder_from);
  return out;
}

async function readChain(path: string, seen: string[]): Promise<Record<string, unknown>> {
  if (seen.includes(path))
    throw new ImagenError('CONFIG_INVALID', `${seen[0]}: "extends" loops (${[...seen, path].join(' → ')})`);
  if (seen.length >= MAX_EXTENDS)
    throw new ImagenError('CONFIG_INVALID', `${seen[0]}: "extends" is deeper than ${MAX_EXTENDS} files`);
  const json = await readJson(path);
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw new ImagenError('CONFIG_INVALID', `${path}: expected a JSON object`);
  const { extends: base, ...own } = json as Record<string, unknown>;
  const mine = absolutePaths(own, dirname(path));
  if (base === undefined) return mine;
  if (typeof base !== 'string' || !base)
    throw new ImagenError('CONFIG_INVALID', `${path}: "extends" must be the path of another config file`);
  const parent = await readChain(resolve(dirname(path), base), [...seen, path]);
  // A comment describes its own file, not the recipe it extends.
  return mergeConfigJson({ ...parent, comment: undefined }, mine);
}

/**
 * A training config file (`imagen train --config FILE`). A file may name another in "extends"
 * and give only what differs: sections are merged key by key, values (arrays included) replace.
 */
export async function readTrainConfig(path: string): Promise<TrainConfig> {
  return parseTrainConfig(await readChain(resolve(path), []), path);
}
