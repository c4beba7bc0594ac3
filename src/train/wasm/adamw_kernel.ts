/**
 * AdamW's element loop in WebAssembly SIMD (adamw.wat), bit-identical to the JS loop and about
 * seven times faster (2.5 M parameters: ≈ 20 → 2.6 ms per step, bench/README.md): the moments live in the module's memory for the whole run, so a step copies
 * only the parameter and its gradient in and the parameter out. Runs wherever WebAssembly SIMD
 * does (Node ≥ 16.4, current browsers); `AdamWArena.create` returns undefined elsewhere.
 */
import { ADAMW_WASM_BASE64 } from './adamw_bytes.js';

/**
 * The slice of the WebAssembly JS API used here. The project's `lib` is plain ES (no DOM), where
 * TypeScript declares no WebAssembly; Node and browsers both provide it as a global.
 */
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object) => { exports: unknown };
}
const wasmApi = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;

interface AdamWExports {
  memory: WasmMemory;
  adamw(
    x: number,
    g: number,
    m: number,
    v: number,
    n: number,
    decay: number,
    w1: number,
    b2: number,
    w2: number,
    eps: number,
    stepSize: number,
    bc2Sqrt: number,
  ): void;
}

/** The element-wise constants of one parameter's update, already rounded to float32. */
export interface AdamWConstants {
  decay: number;
  w1: number;
  b2: number;
  w2: number;
  eps: number;
  stepSize: number;
  bc2Sqrt: number;
}

const PAGE = 65536;
/** wasm32 addresses 4 GiB; beyond that (≈ 500 M parameters) the JS loop takes over. */
const MAX_BYTES = 4 * 1024 ** 3 - PAGE;

let compiled: object | null | undefined;

function module(): object | null {
  if (compiled === undefined) {
    try {
      if (!wasmApi) throw new Error('no WebAssembly');
      const bytes = Uint8Array.from(atob(ADAMW_WASM_BASE64), (c) => c.charCodeAt(0));
      compiled = new wasmApi.Module(bytes);
    } catch {
      compiled = null; // no WebAssembly, or no SIMD
    }
  }
  return compiled;
}

/**
 * One module instance holding every parameter's moments (m, v) plus a scratch region for one
 * parameter and its gradient, laid out once: the memory never grows afterwards, so the moment
 * views stay valid.
 */
export class AdamWArena {
  private constructor(
    private readonly wasm: AdamWExports,
    /** Per parameter size: byte offsets of its m and v. */
    private readonly slots: readonly { m: number; v: number; n: number }[],
    private readonly scratchX: number,
    private readonly scratchG: number,
  ) {}

  /** Room for parameters of these sizes, or undefined where WebAssembly SIMD or memory is lacking. */
  static create(sizes: readonly number[]): AdamWArena | undefined {
    const mod = module();
    if (!mod) return undefined;
    const align = (b: number) => Math.ceil(b / 16) * 16;
    let at = 0;
    const slots = sizes.map((n) => {
      const m = at;
      const v = align(m + 4 * n);
      at = align(v + 4 * n);
      return { m, v, n };
    });
    const largest = Math.max(0, ...sizes);
    const scratchX = at;
    const scratchG = align(scratchX + 4 * largest);
    const end = align(scratchG + 4 * largest);
    if (end > MAX_BYTES) return undefined;
    try {
      const wasm = new wasmApi!.Instance(mod).exports as AdamWExports;
      const pages = Math.ceil(end / PAGE) - wasm.memory.buffer.byteLength / PAGE;
      if (pages > 0) wasm.memory.grow(pages);
      return new AdamWArena(wasm, slots, scratchX, scratchG);
    } catch {
      return undefined; // the allocation failed: fall back to the JS loop
    }
  }

  /** Parameter i's first and second moments (zero until its first update), as live views. */
  moments(i: number): { expAvg: Float32Array; expAvgSq: Float32Array } {
    const s = this.slots[i]!;
    const buf = this.wasm.memory.buffer;
    return { expAvg: new Float32Array(buf, s.m, s.n), expAvgSq: new Float32Array(buf, s.v, s.n) };
  }

  /** One parameter's update in place (`x` is the parameter's data, `g` its gradient). */
  update(i: number, x: Float32Array, g: Float32Array, c: AdamWConstants): void {
    const s = this.slots[i]!;
    const buf = this.wasm.memory.buffer;
    const xs = new Float32Array(buf, this.scratchX, s.n);
    xs.set(x);
    new Float32Array(buf, this.scratchG, s.n).set(g);
    this.wasm.adamw(
      this.scratchX,
      this.scratchG,
      s.m,
      s.v,
      s.n,
      c.decay,
      c.w1,
      c.b2,
      c.w2,
      c.eps,
      c.stepSize,
      c.bc2Sqrt,
    );
    x.set(xs);
  }
}
