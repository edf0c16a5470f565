/**
 * Opening labeled / unlabeled data for finetuning from what a user has, and the
 * label subsets of experiments (N per class, imbalanced, flipped labels).
 *
 * `--labels` accepts: a folder of class subfolders; a .csv / .arrow file of
 * path,label rows; an IDX image file (its labels file is found by name:
 * `*-images-idx3-ubyte[.gz]` -> `*-labels-idx1-ubyte[.gz]`), or `images,labels`;
 * or a folder holding `train-images-idx3-ubyte[.gz]`.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { classFolderDataset, folderDataset } from '../data/datasets/folder.js';
import { classNamesNear, idxDataset } from '../data/datasets/idx.js';
import { labelTableDataset } from '../data/datasets/label-table.js';
import { indicesByClass } from '../data/datasets/split.js';
import type { ImageSource } from '../data/types.js';
import { InputError, invalidOption } from '../util/errors.js';
import type { Rng } from '../util/rng.js';

function idxLabelsFile(imagesFile: string): string | undefined {
  const guess = imagesFile.replace('images-idx3', 'labels-idx1').replace('images.idx', 'labels.idx');
  return guess !== imagesFile && existsSync(guess) ? guess : undefined;
}

/** An IDX source; class names from a `classes.txt` beside it (or one folder up) when there is one. */
function openIdx(imagesFile: string, labelsFile: string | undefined): ImageSource {
  const names = classNamesNear(imagesFile);
  const source = idxDataset(imagesFile, labelsFile, undefined);
  if (names && source.labels && Math.max(...source.labels) < names.length) {
    return idxDataset(imagesFile, labelsFile, names);
  }
  return source;
}

/**
 * Opens `spec` as an ImageSource; `needLabels` makes a source without labels an
 * error. `split` picks `train-*` or `t10k-*` in a folder of IDX files.
 */
export async function openImageSource(
  spec: string,
  needLabels: boolean,
  split: 'train' | 't10k' = 'train',
): Promise<ImageSource> {
  const [first, second] = spec.split(',');
  if (second !== undefined) {
    if (!existsSync(first)) throw new InputError(first, 'no such file');
    if (!existsSync(second)) throw new InputError(second, 'no such file');
    return openIdx(first, second);
  }
  if (!existsSync(spec)) throw new InputError(spec, 'no such file or folder');
  let source: ImageSource;
  if (statSync(spec).isDirectory()) {
    const entries = readdirSync(spec);
    const idx = entries.find((e) => e.startsWith(`${split}-images-idx3-ubyte`));
    if (idx) {
      const file = path.join(spec, idx);
      source = openIdx(file, idxLabelsFile(file));
    } else if (needLabels) {
      source = await classFolderDataset(spec);
    } else {
      source = await folderDataset(spec);
    }
  } else if (/\.(csv|arrow|feather|ipc)$/i.test(spec)) {
    source = labelTableDataset(spec);
  } else if (/idx\d|\.idx/i.test(spec)) {
    source = openIdx(spec, idxLabelsFile(spec));
  } else {
    throw new InputError(spec, 'not a folder, a .csv/.arrow label table or an IDX file');
  }
  if (needLabels && (!source.labels || !source.classNames)) {
    throw new InputError(spec, 'has no labels (expected class subfolders, a label table, or an IDX labels file)');
  }
  return source;
}

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
