/**
 * Seeded randomness. Every random choice on the host (shuffles, crops,
 * permutations, splits) comes from an Rng derived from the run seed, so the same
 * seed gives the same pixels and the same batches.
 *
 * Streams are derived by name: `rng.derive('epoch', 3, 'sample', 17)` is the same
 * stream wherever and whenever it is asked for, independent of how many numbers
 * other streams drew. That is what makes batches reproducible across worker
 * threads and across a resume.
 */
import seedrandom from 'seedrandom';

export interface Rng {
  /** Uniform in [0, 1). */
  next(): number;
  /** Uniform integer in [0, n). */
  int(n: number): number;
  /** Uniform in [low, high). */
  uniform(low: number, high: number): number;
  /** True with probability p. */
  chance(p: number): boolean;
  /** Standard normal (Box-Muller). */
  normal(): number;
  /** Fisher-Yates shuffle in place; returns the array. */
  shuffle<T>(items: T[]): T[];
  /** A permutation of 0..n-1. */
  permutation(n: number): Int32Array;
  /** A new independent stream named by `path` under this one's seed. */
  derive(...path: Array<string | number>): Rng;
  /** The seed string this stream was made from. */
  readonly seed: string;
  /** Internal generator state, for checkpoints. */
  state(): object;
}

class SeededRng implements Rng {
  private readonly gen: seedrandom.PRNG;
  constructor(
    readonly seed: string,
    state?: object,
  ) {
    // biome-ignore lint/suspicious/noExplicitAny: seedrandom's state type is per-algorithm
    this.gen = state ? seedrandom.alea('', { state: state as any }) : seedrandom.alea(seed, { state: true });
  }
  next(): number {
    return this.gen();
  }
  int(n: number): number {
    return Math.floor(this.gen() * n);
  }
  uniform(low: number, high: number): number {
    return low + (high - low) * this.gen();
  }
  chance(p: number): boolean {
    return this.gen() < p;
  }
  normal(): number {
    let u = 0;
    while (u === 0) u = this.gen();
    const v = this.gen();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = items[i];
      items[i] = items[j];
      items[j] = t;
    }
    return items;
  }
  permutation(n: number): Int32Array {
    const p = new Int32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    for (let i = n - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = p[i];
      p[i] = p[j];
      p[j] = t;
    }
    return p;
  }
  derive(...path: Array<string | number>): Rng {
    return new SeededRng(`${this.seed}/${path.join('/')}`);
  }
  state(): object {
    return (this.gen as unknown as { state(): object }).state();
  }
}

/** The root stream for a run seed. */
export function createRng(seed: string | number): Rng {
  return new SeededRng(String(seed));
}

/** Restores a stream saved with `rng.state()`. */
export function restoreRng(seed: string, state: object): Rng {
  return new SeededRng(seed, state);
}
