/**
 * Class-balanced sampling: each draw picks a class uniformly among the classes
 * present, then a sample of that class uniformly (with replacement), so a class
 * with 10x fewer labels is seen as often as the others.
 */
import { indicesByClass } from '../data/datasets/split.js';
import { invalidOption } from '../util/errors.js';
import type { Rng } from '../util/rng.js';

/**
 * `length` indices (default: the number of labeled samples) drawn class-balanced
 * from `labels`, reproducibly from `rng`.
 */
export function classBalancedIndices(
  labels: ArrayLike<number>,
  numClasses: number,
  rng: Rng,
  length?: number,
): Int32Array {
  const byClass = indicesByClass(labels, numClasses).filter((l) => l.length > 0);
  if (byClass.length === 0) throw invalidOption('labels', 'at least one labeled sample', []);
  const n = length ?? byClass.reduce((a, l) => a + l.length, 0);
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const members = byClass[rng.int(byClass.length)];
    out[i] = members[rng.int(members.length)];
  }
  return out;
}

/** A shuffled pass over `indices` (every sample once), reproducibly from `rng`. */
export function shuffledIndices(indices: Int32Array, rng: Rng): Int32Array {
  const perm = rng.permutation(indices.length);
  const out = new Int32Array(indices.length);
  for (let i = 0; i < indices.length; i++) out[i] = indices[perm[i]];
  return out;
}
