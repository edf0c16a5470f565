/**
 * The kNN monitor during pretraining: frozen backbone features of a labelled
 * validation source, split (seeded) into a memory bank and queries, classified
 * with {@link knnClassify}.
 */
import * as tf from '@tensorflow/tfjs';
import type { Backbone } from '../backbones/types.js';
import type { ImageSource, PipelineSpec } from '../data/types.js';
import type { PretrainRecipe } from '../recipes/pretrain-schema.js';
import { UsageError } from '../util/errors.js';
import { createRng } from '../util/rng.js';
import type { BatchLoader } from './components.js';
import { accuracy, knnClassify } from './knn.js';

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

/** The evaluation view: resize, center crop, normalise (no randomness). */
export function evaluationPipeline(input: PretrainRecipe['input']): PipelineSpec {
  return [
    { op: 'resize', size: input.size },
    { op: 'centerCrop', size: input.size },
    { op: 'normalize', mean: input.mean ?? [0.5], std: input.std ?? [0.5] },
  ];
}

type LoaderFactory = (indices: Int32Array) => BatchLoader;

/** Features [N, D] (inference mode) of the images in `indices`, in index order, with their labels. */
export async function extractFeatures(
  backbone: Backbone,
  makeLoader: LoaderFactory,
  indices: Int32Array,
  labels: Int32Array,
): Promise<{ features: tf.Tensor2D; labels: Int32Array }> {
  const chunks: Float32Array[] = [];
  const chunkLabels: number[] = [];
  for await (const batch of makeLoader(indices)) {
    const view = batch.views[0];
    const values = tf.tidy(() => {
      const x = tf.tensor4d(view.data, view.shape as [number, number, number, number]);
      return backbone.features(x, false).dataSync() as Float32Array;
    });
    chunks.push(values);
    for (const index of batch.indices) chunkLabels.push(labels[index]);
  }
  const total = chunks.reduce((n, c) => n + c.length, 0);
  const flat = new Float32Array(total);
  let offset = 0;
  for (const c of chunks) {
    flat.set(c, offset);
    offset += c.length;
  }
  const rows = chunkLabels.length;
  return {
    features: tf.tensor2d(flat, [rows, rows ? total / rows : backbone.featureDim]),
    labels: Int32Array.from(chunkLabels),
  };
}

/** kNN accuracy of `backbone` on the split of `source`. */
export async function knnAccuracy(
  backbone: Backbone,
  source: ImageSource,
  split: KnnSplit,
  makeLoader: LoaderFactory,
  k: number,
  temperature: number,
): Promise<number> {
  const labels = source.labels!;
  const bank = await extractFeatures(backbone, makeLoader, split.bank, labels);
  const queries = await extractFeatures(backbone, makeLoader, split.queries, labels);
  try {
    const predictions = knnClassify(bank.features, bank.labels, queries.features, k, temperature);
    return accuracy(predictions, queries.labels);
  } finally {
    bank.features.dispose();
    queries.features.dispose();
  }
}
