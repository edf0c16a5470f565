/** Deterministic train/val splits and class counts. */
import { assertNumber, invalidOption } from '../../util/errors.js';
import { createRng } from '../../util/rng.js';
import type { ImageSource } from '../types.js';

export interface Split {
  /** Source indices, ascending. */
  train: Int32Array;
  val: Int32Array;
}

export interface SplitOptions {
  /** Fraction of images for validation, in [0, 1). */
  valFraction: number;
  seed: string | number;
  /** Split each class separately (default: true when the source has labels). */
  stratify?: boolean;
  /** Split only these indices (default: all). */
  subset?: Int32Array;
}

/**
 * Splits a source from a seed. Stratified: each class (and the unlabeled group)
 * sends round(n * valFraction) of its images to val, so small classes keep
 * their share. The same seed always gives the same split.
 */
export function splitDataset(source: ImageSource, options: SplitOptions): Split {
  const fraction = assertNumber('valFraction', options.valFraction, 0, 0.999);
  const indices = options.subset ?? Int32Array.from({ length: source.size }, (_, i) => i);
  const stratify = options.stratify ?? Boolean(source.labels);
  const groups = new Map<number, number[]>();
  for (const index of indices) {
    const key = stratify && source.labels ? source.labels[index] : 0;
    let group = groups.get(key);
    if (!group) {
      group = [];
      groups.set(key, group);
    }
    group.push(index);
  }
  const root = createRng(options.seed).derive('split');
  const train: number[] = [];
  const val: number[] = [];
  for (const key of [...groups.keys()].sort((a, b) => a - b)) {
    const group = groups.get(key)!;
    const order = root.derive('group', key).permutation(group.length);
    const valCount = Math.round(group.length * fraction);
    order.forEach((position, rank) => {
      (rank < valCount ? val : train).push(group[position]);
    });
  }
  const sorted = (xs: number[]): Int32Array => Int32Array.from(xs).sort();
  return { train: sorted(train), val: sorted(val) };
}

/** Images per class name ("unlabeled" for -1), over `subset` or the whole source. */
export function sourceClassCounts(source: ImageSource, subset?: Int32Array): Record<string, number> {
  const counts: Record<string, number> = {};
  if (!source.labels) {
    counts.unlabeled = subset ? subset.length : source.size;
    return counts;
  }
  const names = source.classNames ?? [];
  for (const name of names) counts[name] = 0;
  const indices = subset ?? Int32Array.from({ length: source.size }, (_, i) => i);
  for (const index of indices) {
    const label: number = source.labels[index];
    const name = label < 0 ? 'unlabeled' : (names[label] ?? String(label));
    counts[name] = (counts[name] ?? 0) + 1;
  }
  return counts;
}

/** "Pullover 120, Bag 12, ... (imbalance 10.0x)": a one-line report of class counts. */
export function formatClassCounts(counts: Record<string, number>): string {
  const entries = Object.entries(counts);
  const sizes = entries.map(([, n]) => n).filter((n) => n > 0);
  const ratio = sizes.length > 1 ? Math.max(...sizes) / Math.min(...sizes) : 1;
  return `${entries.map(([name, n]) => `${name} ${n}`).join(', ')} (largest/smallest ${ratio.toFixed(1)}x)`;
}

/** Indices of each class: byClass[k] = indices i with labels[i] = k (labels < 0 ignored). */
export function indicesByClass(labels: ArrayLike<number>, numClasses: number): Int32Array[] {
  const lists: number[][] = Array.from({ length: numClasses }, () => []);
  for (let i = 0; i < labels.length; i++) {
    const y = labels[i];
    if (y < 0) continue;
    if (y >= numClasses) throw invalidOption(`labels[${i}]`, `a class in 0..${numClasses - 1}`, y);
    lists[y].push(i);
  }
  return lists.map((l) => Int32Array.from(l));
}
