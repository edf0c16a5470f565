/**
 * The one opener of image sources: every command that takes images (pretrain
 * --data/--val, finetune --labels/--test/--unlabeled, eval, budget, embed)
 * accepts every kind of source the data layer knows:
 *
 * - a folder of images (recursive), or of class subfolders (`dir/<class>/**`);
 * - a folder holding IDX files (`train-images-idx3-ubyte[.gz]`, `t10k-...`);
 * - a scan manifest (`.arrow` with a `status` column): its `ok` rows;
 * - a label table: `.csv`, or `.arrow`/`.feather`/`.ipc` with path and label columns;
 * - an IDX images file (labels from the sibling `*-labels-idx1-ubyte[.gz]`), or
 *   `images,labels` naming both IDX files.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { readArrowTable } from '../util/arrow.js';
import { InputError } from '../util/errors.js';
import { classFolderDataset, folderDataset, manifestDataset } from './datasets/folder.js';
import { classNamesNear, idxDataset } from './datasets/idx.js';
import { labelTableDataset } from './datasets/label-table.js';
import type { ImageSource } from './types.js';

export interface OpenSourceOptions {
  /**
   * The images must have labels (finetuning labels, kNN validation data): a
   * folder is read as class folders, and a source without labels is an error.
   */
  needLabels?: boolean;
  /** Read a folder's subfolders as classes (default: `needLabels`). */
  classFolders?: boolean;
  /** Which IDX files a folder of IDX files gives: `train-*` (default) or `t10k-*`. */
  split?: 'train' | 't10k';
  /** The IDX labels file of an IDX images file (default: its sibling, when there is one). */
  labels?: string;
  /** Class names of IDX labels (default: `classes.txt` beside the IDX file or one folder up). */
  classNames?: string[];
}

const IDX_PATTERN = /(idx\d-ubyte|\.idx\d?)(\.gz)?$/i;
const ARROW_PATTERN = /\.(arrow|feather|ipc)$/i;

/** The labels file that usually sits beside an IDX images file (`train-images-idx3-ubyte` -> `train-labels-idx1-ubyte`). */
export function siblingIdxLabels(imagesFile: string): string | undefined {
  const base = path.basename(imagesFile);
  const guess = path.join(path.dirname(imagesFile), base.replace('images', 'labels').replace('idx3', 'idx1'));
  return guess !== imagesFile && existsSync(guess) ? guess : undefined;
}

function openIdx(imagesFile: string, labelsFile: string | undefined, classNames?: string[]): ImageSource {
  const source = idxDataset(imagesFile, labelsFile, undefined);
  const names = labelsFile ? (classNames ?? classNamesNear(imagesFile)) : undefined;
  // Names that do not cover every label (a classes.txt of another set) are left out.
  if (names && source.labels && Math.max(...source.labels) < names.length) {
    return idxDataset(imagesFile, labelsFile, names);
  }
  return source;
}

function openPath(spec: string, options: OpenSourceOptions): Promise<ImageSource> | ImageSource {
  const [first, second] = spec.split(',');
  if (second !== undefined) {
    for (const file of [first, second]) if (!existsSync(file)) throw new InputError(file, 'no such file');
    return openIdx(first, second, options.classNames);
  }
  if (!existsSync(spec)) {
    throw new InputError(
      spec,
      'no such file or folder (expected a folder, manifest.arrow, labels .csv/.arrow, an IDX file or images,labels IDX files)',
    );
  }
  if (statSync(spec).isDirectory()) {
    const split = options.split ?? 'train';
    const idx = readdirSync(spec).find((e) => e.startsWith(`${split}-images-idx3-ubyte`));
    if (idx) {
      const file = path.join(spec, idx);
      return openIdx(file, options.labels ?? siblingIdxLabels(file), options.classNames);
    }
    return (options.classFolders ?? options.needLabels) ? classFolderDataset(spec) : folderDataset(spec);
  }
  if (IDX_PATTERN.test(spec)) return openIdx(spec, options.labels ?? siblingIdxLabels(spec), options.classNames);
  if (/\.csv$/i.test(spec)) return labelTableDataset(spec);
  if (ARROW_PATTERN.test(spec)) {
    return readArrowTable(spec).getChild('status') ? manifestDataset(spec) : labelTableDataset(spec);
  }
  throw new InputError(
    spec,
    'is not a folder, a manifest or label table (.arrow, .csv), an IDX file (*-idx3-ubyte[.gz]) or images,labels IDX files',
  );
}

/** Opens `spec` (see the module comment for the kinds) as an ImageSource. */
export async function openImageSource(spec: string, options: OpenSourceOptions = {}): Promise<ImageSource> {
  const source = await openPath(spec, options);
  if (options.needLabels && (!source.labels || !source.classNames)) {
    throw new InputError(
      spec,
      'has no labels (expected class subfolders, a label table, or IDX images with a labels file)',
    );
  }
  return source;
}
