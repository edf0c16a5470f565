/**
 * Frozen-backbone features: inference mode (BatchNorm running statistics), the
 * deterministic evaluation view, in source-index order.
 */
import * as tf from '@tensorflow/tfjs';
import { createForwardPass, DEFAULT_INFERENCE, type InferenceSetting } from '../backbones/inference-graph.js';
import type { Backbone } from '../backbones/types.js';
import { evalView } from '../data/augment/presets.js';
import { createLoader } from '../data/loader.js';
import type { Batch, ImageSource, InputSpec } from '../data/types.js';
import { UsageError } from '../util/errors.js';
import { accuracyOf, knnClassify } from './knn.js';
import { type FeatureSet, type LinearProbeOptions, type LinearProbeResult, linearProbe } from './linear-probe.js';

/** Batches over a subset of source indices (a data loader, or a test's own). */
export type BatchesOf = (indices: Int32Array) => AsyncIterable<Batch>;

/** The evaluation-view loader over `indices` of `source`: unshuffled, every image once. */
export function evalBatches(source: ImageSource, input: InputSpec, batchSize = 256): BatchesOf {
  return (subset) =>
    createLoader(source, {
      batchSize,
      views: [evalView(input)],
      channels: input.channels,
      seed: 0,
      epoch: 0,
      shuffle: false,
      dropLast: false,
      subset,
    });
}

/** How feature extraction runs its forward pass, and where it says which path it took. */
export interface FeatureOptions {
  /** The compiled graph where it can run, else eager (default: DEFAULT_INFERENCE, float32). */
  inference?: InferenceSetting;
  /** Called once with the line saying which forward pass runs and why. */
  onForwardPath?: (reason: string) => void;
}

/**
 * Features [N * D] (inference mode) of the images the batches hold (first view),
 * in batch order, with `labels[index]` of each (-1 when there are none).
 */
export async function extractFeatures(
  backbone: Backbone,
  batches: BatchesOf,
  indices: Int32Array,
  labels?: Int32Array,
  options: FeatureOptions = {},
): Promise<FeatureSet> {
  const chunks: Float32Array[] = [];
  const chunkLabels: number[] = [];
  const forward = createForwardPass(backbone, undefined, options.inference ?? DEFAULT_INFERENCE);
  options.onForwardPath?.(forward.path.reason);
  try {
    for await (const batch of batches(indices)) {
      const view = batch.views[0];
      chunks.push(forward.run(view.data, view.shape as [number, number, number, number]).features); // [B * D]
      for (const index of batch.indices) chunkLabels.push(labels ? labels[index] : -1);
    }
  } finally {
    forward.dispose();
  }
  const total = chunks.reduce((n, c) => n + c.length, 0);
  const features = new Float32Array(total);
  let offset = 0;
  for (const c of chunks) {
    features.set(c, offset);
    offset += c.length;
  }
  const rows = chunkLabels.length;
  return { features, labels: Int32Array.from(chunkLabels), dim: rows ? total / rows : backbone.featureDim };
}

/** Evaluation-view features of `indices` of a labeled source. */
export async function backboneFeatures(
  backbone: Backbone,
  source: ImageSource,
  indices: Int32Array,
  input: InputSpec,
  batchSize = 256,
  options: FeatureOptions = {},
): Promise<FeatureSet> {
  if (!source.labels) throw new UsageError(`${source.describe(0)}: a linear probe needs labeled images`);
  return extractFeatures(backbone, evalBatches(source, input, batchSize), indices, source.labels, options);
}

/** A weighted kNN classifier beside the linear probe (same features): k neighbours, vote temperature. */
export interface KnnProbeOptions {
  k: number;
  /** Vote temperature (default 0.1). */
  temperature?: number;
}

/** The linear probe's figures and, when asked for, the kNN classifier's test accuracy on the same features. */
export interface BackboneProbeResult extends LinearProbeResult {
  knnAccuracy?: number;
  knnK?: number;
}

/** Share of `test` features whose weighted-kNN class among the `train` features equals their label. */
export function knnProbeAccuracy(train: FeatureSet, test: FeatureSet, options: KnnProbeOptions): number {
  const predicted = tf.tidy(() =>
    knnClassify(
      tf.tensor2d(train.features, [train.labels.length, train.dim]),
      train.labels,
      tf.tensor2d(test.features, [test.labels.length, test.dim]),
      options.k,
      options.temperature ?? 0.1,
    ),
  );
  return accuracyOf(predicted, test.labels);
}

/**
 * Extracts evaluation-view features of the train and test images and fits a linear probe on them;
 * with `knn`, also classifies the test features by their nearest train features.
 */
export async function probeBackbone(
  backbone: Backbone,
  train: { source: ImageSource; indices: Int32Array },
  test: { source: ImageSource; indices: Int32Array },
  input: InputSpec,
  options: LinearProbeOptions & FeatureOptions & { knn?: KnnProbeOptions } = {},
): Promise<BackboneProbeResult> {
  const trainSet = await backboneFeatures(backbone, train.source, train.indices, input, 256, options);
  const testSet = await backboneFeatures(backbone, test.source, test.indices, input, 256, {
    inference: options.inference,
  });
  let classes = train.source.classNames?.length ?? 0;
  for (const labels of [trainSet.labels, testSet.labels])
    for (const label of labels) classes = Math.max(classes, label + 1);
  const result: BackboneProbeResult = linearProbe(trainSet, testSet, classes, options);
  if (options.knn) {
    result.knnAccuracy = knnProbeAccuracy(trainSet, testSet, options.knn);
    result.knnK = options.knn.k;
  }
  return result;
}
