import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';

/**
 * Browser mode: the page downloads the server's cascade (stage I, and stage II when the server has
 * one) and runs it with onnxruntime-web. This serves the three things it needs, all from this
 * server (no CDN): the page-side code (bundled once from src/server/web/browser_entry.ts with
 * esbuild, which the project already has through tsx), onnxruntime-web's module and .wasm files,
 * and the model folders' files.
 */

/** The stage-I files the page fetches; nothing else in the folder is served. */
const MODEL_FILES = new Set([
  'unet/config.json',
  'unet/diffusion_pytorch_model.safetensors',
  'scheduler/scheduler_config.json',
  'generation_config.json',
  'text_encoder/config.json',
  'text_encoder/model.safetensors',
  'tokenizer/tokenizer_config.json',
  'tokenizer/special_tokens_map.json',
  'tokenizer/tokenizer.json',
  'tokenizer/spiece.model',
]);

/** Stage II's: the same, plus the scheduler of its noise-conditioning augmentation. */
const SR_MODEL_FILES = new Set([...MODEL_FILES, 'image_noising_scheduler/scheduler_config.json']);

/**
 * Above this (both stages together) the page would download more than a browser tab should hold
 * (IF-I-XL is 17 GB).
 */
const MAX_BROWSER_MODEL_BYTES = 1.5e9;

function ortDistDir(): string | undefined {
  try {
    const req = createRequire(import.meta.url);
    // The package's exports hide package.json; its main entry lies in dist/ beside the .wasm files.
    const dir = dirname(req.resolve('onnxruntime-web'));
    return existsSync(join(dir, 'ort.min.mjs')) ? dir : undefined;
  } catch {
    return undefined;
  }
}

let bundle: Promise<string> | undefined;

/** Bundle the page-side code once per process (about 0.3 MB; onnxruntime-web stays separate). */
async function browserBundle(): Promise<string> {
  bundle ??= (async () => {
    const esbuild = await import('esbuild');
    const entry = fileURLToPath(new URL('./web/browser_entry.ts', import.meta.url));
    const alt = fileURLToPath(new URL('../../../src/server/web/browser_entry.ts', import.meta.url));
    const r = await esbuild.build({
      entryPoints: [existsSync(entry) ? entry : alt],
      bundle: true,
      format: 'esm',
      platform: 'browser',
      target: 'es2022',
      // The page maps this bare name to /ort/ort.min.mjs with an import map.
      external: ['onnxruntime-web'],
      write: false,
      minify: true,
      logLevel: 'silent',
    });
    return r.outputFiles[0]!.text;
  })();
  bundle.catch(() => {
    bundle = undefined;
  });
  return bundle;
}

async function modelBytes(dir: string, files: ReadonlySet<string>): Promise<number> {
  let n = 0;
  for (const f of files) n += (await stat(join(dir, f)).catch(() => undefined))?.size ?? 0;
  return n;
}

/**
 * `modelDir`: the server's stage-I folder; `srModelDir`: its stage-II folder, when the server runs
 * one (the page then runs both, so that its images have the server's size).
 */
export async function registerBrowserMode(
  app: FastifyInstance,
  modelDir: string | undefined,
  srModelDir?: string,
): Promise<void> {
  const ort = ortDistDir();
  const why = !modelDir
    ? 'this server has no local model (--model)'
    : !ort
      ? 'onnxruntime-web is not installed'
      : (await modelBytes(modelDir, MODEL_FILES)) +
            (srModelDir ? await modelBytes(srModelDir, SR_MODEL_FILES) : 0) >
          MAX_BROWSER_MODEL_BYTES
        ? 'the model is too large to run in a browser tab'
        : undefined;

  app.get('/v1/browser', async () =>
    why
      ? { available: false, reason: why }
      : {
          available: true,
          model_files: '/v1/browser/model/',
          ...(srModelDir ? { sr_model_files: '/v1/browser/sr/' } : {}),
          ort: '/ort/',
          module: '/browser.js',
        },
  );
  if (why) return;

  app.get('/browser.js', async (_req, reply) => {
    try {
      return reply
        .type('text/javascript; charset=utf-8')
        .header('cache-control', 'no-cache')
        .send(await browserBundle());
    } catch (e) {
      app.log.error(e);
      return reply
        .code(500)
        .send({ error: 'internal', field: null, message: 'could not bundle the browser code' });
    }
  });

  app.get<{ Params: { file: string } }>('/ort/:file', async (req, reply) => {
    const f = req.params.file;
    if (!/^ort[\w.-]*\.(mjs|wasm)$/.test(f) || !existsSync(join(ort!, f)))
      return reply.code(404).send({ error: 'not_found', field: null, message: 'no such file' });
    return reply
      .type(f.endsWith('.wasm') ? 'application/wasm' : 'text/javascript; charset=utf-8')
      .header('cache-control', 'public, max-age=86400')
      .send(await readFile(join(ort!, f)));
  });

  const serveModel = (route: string, dir: string, files: ReadonlySet<string>) =>
    app.get<{ Params: { '*': string } }>(route, async (req, reply) => {
      const rel = req.params['*'];
      // A fixed list, so no path from the URL ever reaches the file system unchecked.
      if (!files.has(rel) || !existsSync(join(dir, rel)))
        return reply.code(404).send({ error: 'not_found', field: null, message: 'no such model file' });
      const type = rel.endsWith('.json') ? 'application/json' : 'application/octet-stream';
      return reply
        .type(type)
        .header('cache-control', 'no-cache')
        .send(await readFile(join(dir, rel)));
    });
  serveModel('/v1/browser/model/*', modelDir!, MODEL_FILES);
  if (srModelDir) serveModel('/v1/browser/sr/*', srModelDir, SR_MODEL_FILES);
}
