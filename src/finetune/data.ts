/**
 * The label subsets of finetuning experiments (N per class, imbalanced, flipped
 * labels, stratified holdout) and the mapping of a test set's classes. Images
 * are opened by the data layer's `openImageSource`.
 */
import { indicesByClass } from '../data/datasets/split.js';
import { InputError, invalidOption } from '../util/errors.js';
import type { Rng } from '../util/rng.js';

/** Up to `perClass` positions of each class of `labels`, drawn with `rng` (sorted). */
export function perClassSubset(labels: Int32Array, numClasses: number, perClass: number, rng: Rng): Int32Array {
  if (!Number.isInteger(perClass) || perClass < 1) throw invalidOption('per-class', 'an integer >= 1', perClass);
  const out: number[] = [];
  for (const members of indicesByClass(labels, numClasses)) {
    const order = rng.permutation(members.length);
    for (let j = 0; j < Math.min(perClass, members.length); j++) out.push(members[order[j]]);
  }
  return Int32Array.from(out.sort((a, b) => a - b));
}

/**
 * Keeps a fraction `factor` (e.g. 0.1 for 10x fewer) of the positions of each
 * class in `minority` (at least 1 each), drawn with `rng`.
 */
export function imbalancedSubset(
  positions: Int32Array,
  labels: Int32Array,
  minority: number[],
  factor: number,
  rng: Rng,
): Int32Array {
  if (!(factor > 0 && factor <= 1)) throw invalidOption('imbalance factor', 'a number in (0, 1]', factor);
  const drop = new Set<number>();
  for (const c of minority) {
    const members = Array.from(positions).filter((p) => labels[p] === c);
    const keep = Math.max(1, Math.round(members.length * factor));
    const order = rng.permutation(members.length);
    for (let j = keep; j < members.length; j++) drop.add(members[order[j]]);
  }
  return positions.filter((p) => !drop.has(p));
}

/** Labels with a fraction of `positions` flipped to another class (uniformly); returns which were flipped. */
export function flipLabels(
  labels: Int32Array,
  positions: Int32Array,
  numClasses: number,
  fraction: number,
  rng: Rng,
): { labels: Int32Array; flipped: Uint8Array } {
  if (!(fraction >= 0 && fraction <= 1)) throw invalidOption('flip fraction', 'a number in [0, 1]', fraction);
  const out = Int32Array.from(labels);
  const flipped = new Uint8Array(labels.length);
  const count = Math.round(positions.length * fraction);
  const order = rng.permutation(positions.length);
  for (let j = 0; j < count; j++) {
    const p = positions[order[j]];
    out[p] = (labels[p] + 1 + rng.int(numClasses - 1)) % numClasses;
    flipped[p] = 1;
  }
  return { labels: out, flipped };
}

/** Stratified holdout: about `fraction` of each class (at least 1 when a class has 2+) goes to `test`. */
export function stratifiedHoldout(
  labels: Int32Array,
  numClasses: number,
  fraction: number,
  rng: Rng,
): { train: Int32Array; test: Int32Array } {
  const train: number[] = [];
  const test: number[] = [];
  for (const members of indicesByClass(labels, numClasses)) {
    const order = rng.permutation(members.length);
    const held = fraction > 0 && members.length >= 2 ? Math.max(1, Math.round(members.length * fraction)) : 0;
    order.forEach((j, position) => {
      (position < held ? test : train).push(members[j]);
    });
  }
  return { train: Int32Array.from(train.sort((a, b) => a - b)), test: Int32Array.from(test.sort((a, b) => a - b)) };
}

/** Maps `labels` named by `from` onto the class order `to`; a class missing from `to` is an error naming `file`. */
export function remapLabels(labels: Int32Array, from: string[], to: string[], file: string): Int32Array {
  const index = new Map(to.map((name, i) => [name, i]));
  return Int32Array.from(labels, (y) => {
    if (y < 0) return -1;
    const mapped = index.get(from[y]);
    if (mapped === undefined)
      throw new InputError(file, `class "${from[y]}" is not one of the training classes (${to.join(', ')})`);
    return mapped;
  });
}
