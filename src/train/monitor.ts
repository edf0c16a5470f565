import type { Backbone } from '../backbones/types.js';
import type { ImageSource } from '../data/types.js';
import { type BatchesOf, extractFeatures, knnProbeAccuracy } from '../probes/features.js';
import { UsageError } from '../util/errors.js';
import { createRng } from '../util/rng.js';

export interface KnnSplit {
  bank: Int32Array;
  queries: Int32Array;
}

/**
 * Seeded split of the labelled images of `source` into disjoint bank and query
 * indices (sorted). With fewer labelled images than bankImages + queryImages,
 * they are shared in that proportion.
 */
export function knnSplit(source: ImageSource, bankImages: number, queryImages: number, seed: number): KnnSplit {
  if (!source.labels) throw new UsageError('the kNN validation data has no labels (use class folders or labelled IDX)');
  const labelled: number[] = [];
  source.labels.forEach((label, i) => {
    if (label >= 0) labelled.push(i);
  });
  if (labelled.length < 2)
    throw new UsageError(`the kNN validation data has ${labelled.length} labelled images; need 2 or more`);
  createRng(seed).derive('knn-split').shuffle(labelled);
  // When there are fewer labelled images than asked for, share them in the asked proportion.
  const n = labelled.length;
  const querySize = Math.max(1, Math.min(queryImages, Math.floor((n * queryImages) / (bankImages + queryImages))));
  const bankSize = Math.min(bankImages, n - querySize);
  return {
    bank: Int32Array.from(labelled.slice(0, bankSize)).sort(),
    queries: Int32Array.from(labelled.slice(bankSize, bankSize + querySize)).sort(),
  };
}

/** kNN accuracy of `backbone` on the split of `source`; `batches` yields evaluation-view batches of a subset. */
export async function knnAccuracy(
  backbone: Backbone,
  source: ImageSource,
  split: KnnSplit,
  batches: BatchesOf,
  k: number,
  temperature: number,
): Promise<number> {
  const labels = source.labels;
  if (!labels) throw new UsageError('the kNN validation data has no labels');
  const bank = await extractFeatures(backbone, batches, split.bank, labels);
  const queries = await extractFeatures(backbone, batches, split.queries, labels);
  return knnProbeAccuracy(bank, queries, { k, temperature });
}
