import { Generator } from '../diffusion/noise.js';

export interface DataOrderState {
  epoch: number;
  position: number;
}

/**
 * Shuffled epochs over `size` items: epoch e is a permutation drawn from (seed, e) alone, so the
 * order is reproducible from a two-number state (resume continues with the exact same batches).
 */
export class DataOrder {
  private perm: number[] = [];

  constructor(
    readonly size: number,
    readonly seed: number,
    public state: DataOrderState = { epoch: 0, position: 0 },
  ) {
    this.perm = this.permutation(state.epoch);
  }

  private permutation(epoch: number): number[] {
    const g = new Generator(BigInt(this.seed) * 1_000_003n + BigInt(epoch));
    const p = Array.from({ length: this.size }, (_, i) => i);
    for (let i = p.length - 1; i > 0; i--) {
      const j = Math.floor(g.uniform() * (i + 1));
      [p[i], p[j]] = [p[j]!, p[i]!];
    }
    return p;
  }

  /** Continue from a saved state (the epoch's permutation is re-derived from the seed). */
  restore(state: DataOrderState): void {
    this.state = { ...state };
    this.perm = this.permutation(state.epoch);
  }

  next(batchSize: number): number[] {
    const out: number[] = [];
    while (out.length < batchSize) {
      if (this.state.position >= this.size) {
        this.state = { epoch: this.state.epoch + 1, position: 0 };
        this.perm = this.permutation(this.state.epoch);
      }
      out.push(this.perm[this.state.position]!);
      this.state = { ...this.state, position: this.state.position + 1 };
    }
    return out;
  }
}
