import { ImagenError } from '../engine/errors.js';
import type { Tensor } from '../engine/graph.js';
import { type NDArray, shapeStr } from '../engine/ndarray.js';
import { type InitSpec, Parameter } from '../engine/parameter.js';
import { initialize } from './init.js';

export function joinPath(prefix: string, name: string): string {
  return prefix ? `${prefix}.${name}` : name;
}

/**
 * A node of the model tree. `prefix` is its state-dict path (e.g. `down_blocks.0.resnets.1`),
 * so parameter names equal diffusers' / transformers' keys and layer paths appear in errors.
 */
export class Module {
  private readonly ownParams: Parameter[] = [];
  private readonly children: Module[] = [];

  constructor(readonly prefix: string) {}

  protected param(name: string, shape: readonly number[], init?: InitSpec): Parameter {
    const p = new Parameter(joinPath(this.prefix, name), shape, { init });
    this.ownParams.push(p);
    return p;
  }

  protected child<M extends Module>(m: M): M {
    this.children.push(m);
    return m;
  }

  /** Run `fn` with this module's path as the layer path of traced nodes. */
  protected scoped<T>(x: Tensor, fn: () => T): T {
    return x.trace.atScope(this.prefix, fn);
  }

  parameters(): Parameter[] {
    return [...this.ownParams, ...this.children.flatMap((c) => c.parameters())];
  }

  namedParameters(): Map<string, Parameter> {
    return new Map(this.parameters().map((p) => [p.name, p]));
  }

  /** Fill every parameter from its init spec with a seeded generator (deterministic per seed). */
  initialize(seed = 0): this {
    initialize(this.parameters(), seed);
    return this;
  }

  stateDict(): Record<string, NDArray> {
    const out: Record<string, NDArray> = {};
    for (const p of this.parameters()) {
      if (!p.value) throw new ImagenError('WEIGHTS_MISMATCH', `parameter ${p.name} has no value`);
      out[p.name] = p.value;
    }
    return out;
  }

  /**
   * Load weights by exact name. Missing, unexpected and misshapen keys are collected and
   * reported together (strict by default: a silently half-loaded model is worse than an error).
   */
  async loadStateDict(
    source: {
      keys(): string[];
      get(name: string): Promise<NDArray>;
      info?(name: string): { shape: readonly number[] };
    },
    options: { strict?: boolean; aliases?: Record<string, string> } = {},
  ): Promise<void> {
    const strict = options.strict ?? true;
    const available = new Set(source.keys());
    const params = this.parameters();
    const missing: string[] = [];
    const misshapen: string[] = [];
    const used = new Set<string>();
    const plan: [Parameter, string][] = [];
    for (const p of params) {
      const key = available.has(p.name) ? p.name : options.aliases?.[p.name];
      if (!key || !available.has(key)) {
        missing.push(p.name);
        continue;
      }
      used.add(key);
      const shape = source.info?.(key).shape;
      if (shape && (shape.length !== p.shape.length || shape.some((d, i) => d !== p.shape[i]))) {
        misshapen.push(`${key}: checkpoint ${shapeStr(shape)} vs model ${shapeStr(p.shape)}`);
        continue;
      }
      plan.push([p, key]);
    }
    const unexpected = [...available].filter(
      (k) => !used.has(k) && !Object.values(options.aliases ?? {}).includes(k),
    );
    const problems: string[] = [];
    if (missing.length) problems.push(`missing ${missing.length}: ${listSome(missing)}`);
    if (misshapen.length) problems.push(`wrong shape ${misshapen.length}: ${listSome(misshapen)}`);
    if (strict && unexpected.length)
      problems.push(`unexpected ${unexpected.length}: ${listSome(unexpected)}`);
    if (problems.length) {
      throw new ImagenError('WEIGHTS_MISMATCH', `weights do not match the model (${problems.join('; ')})`);
    }
    for (const [p, key] of plan) p.set(await source.get(key));
  }
}

function listSome(xs: string[]): string {
  return xs.length <= 8 ? xs.join(', ') : `${xs.slice(0, 8).join(', ')}, … (+${xs.length - 8})`;
}

/** A state dict held in memory, usable wherever a checkpoint reader is expected. */
export function memorySource(sd: Record<string, NDArray>) {
  return {
    keys: () => Object.keys(sd),
    get: async (k: string) => sd[k]!,
    info: (k: string) => ({ shape: sd[k]!.shape }),
  };
}
