/**
 * Permutation sets for the jigsaw task, chosen for a large Hamming distance
 * between any two permutations (Noroozi & Favaro, 2016, section 3.2: the set
 * should have a large average and minimal Hamming distance, so that no two
 * permutations are too alike to tell apart).
 *
 * Greedy max-min selection, deterministic for a seed: start from one permutation
 * drawn from the seeded rng; then repeatedly add the permutation, among all T!,
 * whose smallest Hamming distance to the permutations chosen so far is largest
 * (ties broken by the seeded rng). The resulting set's minimal pairwise distance
 * is the last pick's distance.
 */
import { createRng } from '../src/util/rng.js';

export interface PermutationSet {
  /** Number of tiles T each permutation orders. */
  tiles: number;
  /** permutations[p][j]: which original tile goes to position j under permutation p. */
  permutations: number[][];
  /** Smallest Hamming distance between any two permutations of the set. */
  minHammingDistance: number;
}

function factorial(n: number): number {
  let f = 1;
  for (let i = 2; i <= n; i++) f *= i;
  return f;
}

/** All permutations of 0..n-1 in lexicographic order, flattened: [n!, n]. */
function allPermutations(n: number): Uint8Array {
  const count = factorial(n);
  const out = new Uint8Array(count * n);
  const current = Array.from({ length: n }, (_, i) => i);
  for (let p = 0; p < count; p++) {
    out.set(current, p * n);
    // Next lexicographic permutation.
    let i = n - 2;
    while (i >= 0 && current[i] >= current[i + 1]) i--;
    if (i < 0) break;
    let j = n - 1;
    while (current[j] <= current[i]) j--;
    [current[i], current[j]] = [current[j], current[i]];
    for (let a = i + 1, b = n - 1; a < b; a++, b--) [current[a], current[b]] = [current[b], current[a]];
  }
  return out;
}

/** Number of positions where two permutations differ. */
export function hammingDistance(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) d++;
  return d;
}

const cache = new Map<string, PermutationSet>();

/** Largest set size for `tiles` tiles (all T! permutations). */
export function maxPermutationCount(tiles: number): number {
  return factorial(tiles);
}

/**
 * `count` permutations of `tiles` tiles with a greedily maximised minimal Hamming
 * distance, the same for the same (tiles, count, seed). Cached per process.
 * Cost: O(count * tiles!) — about a second for 100 of 9 tiles, a few seconds for 1000.
 */
export function maximalHammingPermutations(tiles: number, count: number, seed: number | string = 0): PermutationSet {
  if (!Number.isInteger(tiles) || tiles < 2 || tiles > 9) {
    throw new RangeError(`maximalHammingPermutations needs 2 to 9 tiles, got ${tiles}`);
  }
  const total = factorial(tiles);
  if (!Number.isInteger(count) || count < 2 || count > total) {
    throw new RangeError(
      `maximalHammingPermutations needs a count between 2 and ${total} for ${tiles} tiles, got ${count}`,
    );
  }
  const key = `${tiles}/${count}/${seed}`;
  const cached = cache.get(key);
  if (cached) return cached;

  const all = allPermutations(tiles);
  const rng = createRng(`jigsaw-permutations/${seed}`);
  const minDistance = new Uint8Array(total).fill(255); // to the chosen set
  const chosen: number[] = [];
  let lastDistance = tiles;

  // Each permutation packed as 4-bit digits: positions 0-7 in `low`, position 8 in `high`,
  // so a Hamming distance is a XOR and a count of non-zero nibbles.
  const low = new Int32Array(total);
  const high = new Int32Array(total);
  for (let c = 0; c < total; c++) {
    let packed = 0;
    for (let i = 0; i < Math.min(tiles, 8); i++) packed |= all[c * tiles + i] << (4 * i);
    low[c] = packed;
    high[c] = tiles === 9 ? all[c * tiles + 8] : 0;
  }

  // After each pick: lower every candidate's distance to the set, and find the
  // largest such distance and how many candidates share it, in one pass.
  let best = 0;
  let ties = 0;
  const choose = (index: number) => {
    chosen.push(index);
    const pickedLow = low[index];
    const pickedHigh = high[index];
    best = 0;
    ties = 0;
    for (let c = 0; c < total; c++) {
      let current = minDistance[c];
      if (current > 0) {
        const x = low[c] ^ pickedLow;
        const nonZero = (x | (x >>> 1) | (x >>> 2) | (x >>> 3)) & 0x11111111; // 1 per differing nibble
        const d = (Math.imul(nonZero, 0x11111111) >>> 28) + (high[c] !== pickedHigh ? 1 : 0);
        if (d < current) {
          current = d;
          minDistance[c] = d;
        }
      }
      if (current > best) {
        best = current;
        ties = 1;
      } else if (current === best) ties++;
    }
  };

  choose(rng.int(total));
  while (chosen.length < count) {
    // best > 0 here: count <= total leaves an unchosen permutation.
    let pick = rng.int(ties);
    let index = -1;
    for (let c = 0; c < total; c++) {
      if (minDistance[c] === best && pick-- === 0) {
        index = c;
        break;
      }
    }
    lastDistance = best;
    choose(index);
  }
  const set: PermutationSet = {
    tiles,
    permutations: chosen.map((index) => Array.from(all.subarray(index * tiles, (index + 1) * tiles))),
    minHammingDistance: lastDistance,
  };
  cache.set(key, set);
  return set;
}
