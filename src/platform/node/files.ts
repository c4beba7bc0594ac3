/**
 * Node edge for checkpoint files: positional reads through a FileHandle (a multi-GB
 * checkpoint is never read whole), checkpoint discovery in a model folder, and atomic
 * writes (temp file + fsync + rename) so a crash never leaves a half-written file under
 * the real name.
 */
import { randomBytes } from 'node:crypto';
import { type FileHandle, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, normalize, resolve, sep } from 'node:path';
import { ImagenError } from '../../engine/errors.js';
import type { NDArray } from '../../engine/ndarray.js';
import { type ByteSource, SafetensorsFile, serializeSafetensors } from '../../io/safetensors.js';
import { type CheckpointReader, ShardedCheckpoint } from '../../io/sharded.js';

/** fs read/write calls take at most 2 GiB − 1 bytes; stay well below. */
const IO_SLICE = 1 << 30;

const PICKLE_EXTENSIONS = ['.bin', '.pt', '.pth', '.ckpt', '.pkl'];
const PICKLE_REFUSAL = 'pickle checkpoints are not loaded for safety; convert to safetensors';

function errnoCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

export type FileByteSource = ByteSource & { close(): Promise<void> };

export async function fileByteSource(path: string): Promise<FileByteSource> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT')
      throw new ImagenError('NOT_FOUND', `${path}: file not found`, { cause: err });
    throw err;
  }
  let size: number;
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new ImagenError('FILE_INVALID', `${path}: not a regular file`);
    size = st.size;
  } catch (err) {
    await fh.close();
    throw err;
  }

  const readInto = async (offset: number, target: Uint8Array): Promise<void> => {
    const length = target.byteLength;
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + length > size) {
      throw new ImagenError(
        'FILE_INVALID',
        `${path}: read of ${length} bytes at offset ${offset} runs past the end of the ${size}-byte file`,
      );
    }
    let done = 0;
    while (done < length) {
      const { bytesRead } = await fh.read(target, done, Math.min(length - done, IO_SLICE), offset + done);
      if (bytesRead === 0) {
        throw new ImagenError(
          'FILE_INVALID',
          `${path}: file ended at byte ${offset + done} while reading ${length} bytes at offset ${offset} ` +
            '(was it truncated or replaced while open?)',
        );
      }
      done += bytesRead;
    }
  };

  return {
    name: path,
    size,
    async read(offset: number, length: number): Promise<Uint8Array> {
      if (!Number.isSafeInteger(length) || length < 0) {
        throw new ImagenError('BAD_INPUT', `${path}: invalid read length ${length}`);
      }
      const buf = new Uint8Array(length);
      await readInto(offset, buf);
      return buf;
    },
    readInto,
    close: () => fh.close(),
  };
}

export async function openSafetensors(path: string): Promise<SafetensorsFile> {
  if (isPickle(path)) throw pickleError(path);
  const src = await fileByteSource(path);
  try {
    return await SafetensorsFile.open(src);
  } catch (err) {
    await src.close();
    throw err;
  }
}

export interface OpenCheckpointOptions {
  /** diffusers/transformers weight variant: picks `*.fp16.safetensors` (and the fp16 index). */
  variant?: 'fp16';
}

export type ClosableCheckpoint = CheckpointReader & { close(): Promise<void> };

/**
 * Open a checkpoint given a `.safetensors` file, a `.safetensors.index.json` file, or a model
 * folder holding `diffusion_pytorch_model[.fp16].safetensors` / `model[.fp16].safetensors`
 * or their sharded index.
 */
export async function openCheckpoint(
  pathOrDir: string,
  options: OpenCheckpointOptions = {},
): Promise<ClosableCheckpoint> {
  let st: Awaited<ReturnType<typeof stat>>;
  try {
    st = await stat(pathOrDir);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') {
      throw new ImagenError('NOT_FOUND', `${pathOrDir}: no such checkpoint file or folder`, { cause: err });
    }
    throw err;
  }
  if (!st.isDirectory()) return openCheckpointFile(pathOrDir);

  const names = await readdir(pathOrDir);
  const present = new Set(names);
  const candidates = checkpointCandidates(options.variant);
  for (const c of candidates) {
    if (present.has(c)) return openCheckpointFile(join(pathOrDir, c));
  }

  const others = names.filter((n) => n.endsWith('.safetensors') || n.endsWith('.json'));
  const pickles = names.filter(isPickle);
  if (pickles.length > 0 && !names.some((n) => n.endsWith('.safetensors'))) {
    throw pickleError(`${pathOrDir} (${pickles.slice(0, 5).join(', ')})`);
  }
  let hint = '';
  if (options.variant) {
    const plain = checkpointCandidates(undefined).filter((c) => present.has(c));
    if (plain.length > 0) hint = `; found ${plain.join(', ')} without the ${options.variant} variant`;
  } else {
    const fp16 = checkpointCandidates('fp16').filter((c) => present.has(c));
    if (fp16.length > 0) hint = `; found ${fp16.join(', ')} — pass { variant: 'fp16' }`;
  }
  if (!hint && others.length > 0) hint = `; other files here: ${others.slice(0, 10).join(', ')}`;
  throw new ImagenError(
    'NOT_FOUND',
    `${pathOrDir}: no safetensors checkpoint found; looked for ${candidates.join(', ')}${hint}`,
  );
}

function checkpointCandidates(variant: string | undefined): string[] {
  const out: string[] = [];
  for (const stem of ['diffusion_pytorch_model', 'model']) {
    if (variant) {
      out.push(
        `${stem}.${variant}.safetensors`,
        // What diffusers/transformers actually write for a sharded variant (`_add_variant`
        // inserts it before the last extension), plus the spelling one would guess.
        `${stem}.safetensors.index.${variant}.json`,
        `${stem}.${variant}.safetensors.index.json`,
      );
    } else {
      out.push(`${stem}.safetensors`, `${stem}.safetensors.index.json`);
    }
  }
  return out;
}

/** `*.index.json`, or a variant index such as `model.safetensors.index.fp16.json`. */
function isIndexFile(path: string): boolean {
  return /\.index(\.[^./\\]+)?\.json$/.test(path);
}

function isPickle(path: string): boolean {
  const lower = path.toLowerCase();
  return PICKLE_EXTENSIONS.some((ext) => lower.endsWith(ext));
}

function pickleError(what: string): ImagenError {
  return new ImagenError('UNSUPPORTED', `${what}: ${PICKLE_REFUSAL}`);
}

async function openCheckpointFile(path: string): Promise<ClosableCheckpoint> {
  if (isPickle(path)) throw pickleError(path);
  if (!isIndexFile(path)) return openSafetensors(path);

  let index: unknown;
  try {
    index = JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    if (err instanceof SyntaxError) {
      throw new ImagenError('FILE_INVALID', `${path}: index is not valid JSON (${err.message})`, {
        cause: err,
      });
    }
    throw err;
  }
  const dir = dirname(path);
  return ShardedCheckpoint.open(
    index,
    (file) => {
      // Shard names come from a downloaded file: keep them inside the checkpoint folder.
      const norm = normalize(file);
      if (isAbsolute(norm) || norm === '..' || norm.startsWith(`..${sep}`)) {
        return Promise.reject(
          new ImagenError(
            'FILE_INVALID',
            `${path}: shard file name "${file}" points outside the checkpoint folder`,
          ),
        );
      }
      return openSafetensors(join(dir, norm));
    },
    path,
  );
}

// ---- atomic writes ----

async function writeAll(fh: FileHandle, data: Uint8Array): Promise<void> {
  let done = 0;
  while (done < data.byteLength) {
    const { bytesWritten } = await fh.write(data, done, Math.min(data.byteLength - done, IO_SLICE));
    done += bytesWritten;
  }
}

/** Makes the rename itself durable; some platforms/filesystems cannot fsync a directory. */
async function fsyncDir(dir: string): Promise<void> {
  let fh: FileHandle | undefined;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch (err) {
    const code = errnoCode(err);
    if (
      code !== 'EISDIR' &&
      code !== 'EPERM' &&
      code !== 'EINVAL' &&
      code !== 'ENOTSUP' &&
      code !== 'EACCES'
    ) {
      throw err;
    }
  } finally {
    await fh?.close().catch(() => {});
  }
}

/**
 * Write `chunks` to `path` atomically: into a temp file in the same folder (same filesystem,
 * so the rename is atomic), fsync, rename over `path`, fsync the folder. Readers see the old
 * file or the complete new one; on any error the temp file is removed and `path` is untouched.
 * Chunks may come from an (async) generator, so large outputs need not be held in memory.
 */
export async function atomicWriteChunks(
  path: string,
  chunks: Iterable<Uint8Array> | AsyncIterable<Uint8Array>,
): Promise<void> {
  const target = resolve(path);
  const tmp = `${target}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  let fh: FileHandle | undefined = await open(tmp, 'wx');
  try {
    for await (const chunk of chunks) await writeAll(fh, chunk);
    await fh.sync();
    await fh.close();
    fh = undefined;
    await rename(tmp, target);
  } catch (err) {
    await fh?.close().catch(() => {});
    await rm(tmp, { force: true }).catch(() => {});
    throw err;
  }
  await fsyncDir(dirname(target));
}

export async function atomicWriteFile(path: string, data: Uint8Array | string): Promise<void> {
  await atomicWriteChunks(path, [typeof data === 'string' ? new TextEncoder().encode(data) : data]);
}

export async function writeSafetensors(
  path: string,
  tensors: Record<string, NDArray>,
  metadata?: Record<string, string>,
): Promise<void> {
  const { header, chunks } = serializeSafetensors(tensors, metadata);
  await atomicWriteChunks(path, [header, ...chunks]);
}

/** Temp files left by an interrupted atomic write (a crash between open and rename). */
export function isAtomicTempFile(path: string): boolean {
  return /\.tmp-\d+-[0-9a-f]{12}$/.test(basename(path));
}
