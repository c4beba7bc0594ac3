import { ImagenError } from '../engine/errors.js';
import { NDArray, sizeOf } from '../engine/ndarray.js';

/**
 * Seedable noise for diffusion: xoshiro128** (Blackman & Vigna 2018) for 32-bit words, 53-bit
 * uniforms from two words, standard normals by the Box–Muller transform (the second value of each
 * pair is kept as a spare, part of the state). Integer arithmetic is exact everywhere; the normals
 * use Math.log/sqrt/cos/sin, which V8 (Node, Chrome) implements identically on every machine.
 *
 * This is NOT PyTorch's stream: parity tests inject recorded noise instead (spec §9).
 */
export class Generator {
  private s: Uint32Array;
  private spare: number | null = null;

  constructor(seed: number | bigint = 0) {
    if (typeof seed === 'number' && !Number.isSafeInteger(seed)) {
      throw new ImagenError('BAD_INPUT', `Generator seed must be an integer, got ${seed}`);
    }
    this.s = seedWords(BigInt.asUintN(64, BigInt(seed)));
  }

  /** Next 32-bit output of xoshiro128** as an unsigned integer. */
  nextUint32(): number {
    const s = this.s;
    const [s0, s1] = [s[0]!, s[1]!];
    const result = Math.imul(rotl(Math.imul(s1, 5), 7), 9) >>> 0;
    const t = s1 << 9;
    s[2] = s[2]! ^ s0;
    s[3] = s[3]! ^ s1;
    s[1] = s1 ^ s[2]!;
    s[0] = s0 ^ s[3]!;
    s[2] = s[2]! ^ t;
    s[3] = rotl(s[3]!, 11);
    return result;
  }

  /** Uniform double in [0, 1) with 53 random bits. */
  uniform(): number {
    const hi = this.nextUint32() >>> 5; // 27 bits
    const lo = this.nextUint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** One standard normal N(0, 1) (Box–Muller; every second call returns the stored spare). */
  normal(): number {
    if (this.spare !== null) {
      const z = this.spare;
      this.spare = null;
      return z;
    }
    const u1 = 1 - this.uniform(); // (0, 1]: log is finite
    const u2 = this.uniform();
    const r = Math.sqrt(-2 * Math.log(u1));
    const theta = 2 * Math.PI * u2;
    this.spare = r * Math.sin(theta);
    return r * Math.cos(theta);
  }

  /** n standard normals as float32. */
  randn(n: number): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = this.normal();
    return out;
  }

  /** A float32 NDArray of standard normals (row-major fill). */
  randnNDArray(shape: readonly number[]): NDArray {
    return new NDArray('float32', [...shape], this.randn(sizeOf(shape)));
  }

  /** Serialisable state; `Generator.fromState(g.state())` continues the exact same stream. */
  state(): string {
    const words = Array.from(this.s, (w) => w.toString(16).padStart(8, '0')).join('');
    return `xoshiro128ss:${words}:${this.spare === null ? '-' : float64Hex(this.spare)}`;
  }

  static fromState(state: string): Generator {
    const m = /^xoshiro128ss:([0-9a-f]{32}):(-|[0-9a-f]{16})$/.exec(state);
    if (!m) throw new ImagenError('BAD_INPUT', `invalid Generator state "${state}"`);
    const g = new Generator(0);
    for (let i = 0; i < 4; i++) g.s[i] = Number.parseInt(m[1]!.slice(8 * i, 8 * i + 8), 16);
    if (g.s.every((w) => w === 0)) throw new ImagenError('BAD_INPUT', 'Generator state must not be all zero');
    g.spare = m[2] === '-' ? null : hexFloat64(m[2]!);
    return g;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/** Expand a 64-bit seed into four non-zero-in-total state words with SplitMix64. */
function seedWords(seed: bigint): Uint32Array {
  const mask = (1n << 64n) - 1n;
  let x = seed;
  const words = new Uint32Array(4);
  for (let i = 0; i < 2; i++) {
    x = (x + 0x9e3779b97f4a7c15n) & mask;
    let z = x;
    z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & mask;
    z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & mask;
    z ^= z >> 31n;
    words[2 * i] = Number(z & 0xffffffffn);
    words[2 * i + 1] = Number(z >> 32n);
  }
  if (words.every((w) => w === 0)) words[0] = 1; // xoshiro's only forbidden state
  return words;
}

function float64Hex(x: number): string {
  const v = new DataView(new ArrayBuffer(8));
  v.setFloat64(0, x);
  return v.getBigUint64(0).toString(16).padStart(16, '0');
}

function hexFloat64(h: string): number {
  const v = new DataView(new ArrayBuffer(8));
  v.setBigUint64(0, BigInt(`0x${h}`));
  return v.getFloat64(0);
}
