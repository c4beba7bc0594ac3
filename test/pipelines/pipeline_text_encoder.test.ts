/** A pipeline folder's text encoder is streamed when it is big (T5-XXL), and encodes the same. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../src/cli/main.js';
import { StreamingT5Encoder } from '../../src/models/t5/streaming.js';
import { encodePrompts } from '../../src/models/t5/t5_encoder.js';
import { loadPipelineFolder, openTextEncoder } from '../../src/platform/node/pipeline_folder.js';
import { createRuntime } from '../../src/platform/node/runtime.js';
import { tinyTrainArgs } from '../helpers/cli.js';
import { writeShapesDataset } from '../helpers/shapes.js';
import { maxAbsErr } from '../reference/fd.js';

let root: string;
const rt = createRuntime({ threads: 1 });

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'imagen-te-'));
  await writeShapesDataset(join(root, 'data'), 8, 16);
  const code = await main(['node', 'imagen', ...tinyTrainArgs(join(root, 'data'), join(root, 'm'))]);
  expect(code).toBe(0);
});
afterAll(() => rm(root, { recursive: true, force: true }));

describe('pipeline text encoder', () => {
  it('streams above the size threshold and matches the in-memory encoder', async () => {
    const small = await loadPipelineFolder(join(root, 'm'));
    const big = await loadPipelineFolder(join(root, 'm'), { streamingThresholdBytes: 1 });
    expect(small.textEncoder).toBeDefined();
    expect(big.textEncoder).toBeUndefined(); // not held in memory
    const a = (await openTextEncoder(small, rt))!;
    const b = (await openTextEncoder(big, rt))!;
    expect(b).toBeInstanceOf(StreamingT5Encoder);
    const ea = await encodePrompts(a, small.tokenizer!, ['a red square'], { negativePrompt: '' });
    const eb = await encodePrompts(b, big.tokenizer!, ['a red square'], { negativePrompt: '' });
    expect(maxAbsErr(eb.promptEmbeds.data as Float32Array, ea.promptEmbeds)).toBeLessThan(1e-5);
    expect(maxAbsErr(eb.negativePromptEmbeds!.data as Float32Array, ea.negativePromptEmbeds!)).toBeLessThan(
      1e-5,
    );
    await a.release();
    await b.release();
  });
});
