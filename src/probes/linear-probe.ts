/**
 * Linear probe: how linearly separable frozen features are. Features are
 * standardised with the training features' mean and std, and a multinomial
 * logistic regression (softmax, mean cross-entropy + l2 ||W||², full-batch Adam,
 * gradients written out) is fitted on them. One implementation with one set of
 * defaults serves the pretraining yardstick (`linearProbe`) and the label check
 * (`outOfFoldProbabilities`).
 */
import * as tf from '@tensorflow/tfjs';
import { indicesByClass } from '../data/datasets/split.js';
import { invalidOption, UsageError } from '../util/errors.js';
import { createRng } from '../util/rng.js';
import { accuracyOf } from './knn.js';

/** Features of N images, row-major [N, dim], and their class indices. */
export interface FeatureSet {
  features: Float32Array;
  labels: Int32Array;
  dim: number;
}

export interface LinearProbeOptions {
  /** Full-batch Adam steps (default 500). */
  steps?: number;
  /** Adam learning rate (default 0.05). */
  learningRate?: number;
  /** L2 penalty l2 * ||W||² added to the mean cross-entropy (default 1e-4). */
  l2?: number;
}

export const LINEAR_PROBE_DEFAULTS: Required<LinearProbeOptions> = { steps: 500, learningRate: 0.05, l2: 1e-4 };

/** Per-dimension mean and std (population, + 1e-6 inside the root). */
export interface Moments {
  mean: Float32Array; // [D]
  std: Float32Array; // [D]
}

/** Moments of the rows `positions` (default: all) of features [N * dim]. */
export function featureMoments(features: Float32Array, dim: number, positions?: ArrayLike<number>): Moments {
  const rows = positions ?? Int32Array.from({ length: features.length / dim }, (_, i) => i);
  const n = rows.length;
  const mean = new Float64Array(dim);
  const variance = new Float64Array(dim);
  for (let i = 0; i < n; i++) for (let d = 0; d < dim; d++) mean[d] += features[rows[i] * dim + d];
  for (let d = 0; d < dim; d++) mean[d] /= Math.max(1, n);
  for (let i = 0; i < n; i++) for (let d = 0; d < dim; d++) variance[d] += (features[rows[i] * dim + d] - mean[d]) ** 2;
  return {
    mean: Float32Array.from(mean),
    std: Float32Array.from(variance, (v) => Math.sqrt(v / Math.max(1, n) + 1e-6)),
  };
}

/** (x - mean) / std per dimension, as a new array. */
export function standardize(features: Float32Array, dim: number, m: Moments): Float32Array {
  const out = new Float32Array(features.length);
  for (let i = 0; i < features.length; i++) out[i] = (features[i] - m.mean[i % dim]) / m.std[i % dim];
  return out;
}

/** A fitted probe: logits = standardize(x) W + b. */
export interface SoftmaxProbe {
  dim: number;
  numClasses: number;
  moments: Moments;
  /** [dim * numClasses] row-major. */
  weights: Float32Array;
  bias: Float32Array;
  /** Final training objective (cross-entropy + penalty). */
  trainLoss: number;
}

function rowsOf(set: FeatureSet, positions?: ArrayLike<number>): { x: Float32Array; y: Int32Array } {
  if (!positions) return { x: set.features, y: set.labels };
  const x = new Float32Array(positions.length * set.dim);
  const y = new Int32Array(positions.length);
  for (let i = 0; i < positions.length; i++) {
    const p = positions[i];
    x.set(set.features.subarray(p * set.dim, (p + 1) * set.dim), i * set.dim);
    y[i] = set.labels[p];
  }
  return { x, y };
}

/** Fits the probe on the rows `positions` of `train` (default: all). Leaves no tensors behind. */
export function fitLinearProbe(
  train: FeatureSet,
  numClasses: number,
  options: LinearProbeOptions = {},
  positions?: ArrayLike<number>,
): SoftmaxProbe {
  const { dim } = train;
  if (train.features.length !== train.labels.length * dim) {
    throw new UsageError('linearProbe: features and labels disagree in count');
  }
  const { steps, learningRate, l2 } = { ...LINEAR_PROBE_DEFAULTS, ...options };
  const { x, y } = rowsOf(train, positions);
  const n = y.length;
  if (n === 0) throw new UsageError('linearProbe: no training rows');
  for (const label of y) {
    if (!(label >= 0 && label < numClasses))
      throw invalidOption('probe labels', `classes in 0..${numClasses - 1}`, label);
  }
  const moments = featureMoments(x, dim);
  const data = tf.tidy(() => ({
    xs: tf.tensor2d(standardize(x, dim, moments), [n, dim]), // [n, D]
    targets: tf.oneHot(tf.tensor1d(y, 'int32'), numClasses).toFloat() as tf.Tensor2D, // [n, K]
  }));
  let params: tf.Tensor[] = [tf.zeros([dim, numClasses]), tf.zeros([numClasses])]; // W [D, K], b [K]
  let first: tf.Tensor[] = params.map((p) => tf.zerosLike(p));
  let second: tf.Tensor[] = params.map((p) => tf.zerosLike(p));
  const [beta1, beta2] = [0.9, 0.999];
  // Mean cross-entropy (from log-softmax) + l2 ||W||².
  const objective = (w: tf.Tensor, b: tf.Tensor): tf.Scalar =>
    tf.add(
      tf.neg(tf.mean(tf.sum(tf.mul(data.targets, tf.logSoftmax(tf.add(tf.matMul(data.xs, w), b))), 1))),
      tf.mul(tf.sum(tf.square(w)), l2),
    ) as tf.Scalar;
  try {
    for (let s = 1; s <= steps; s++) {
      const next = tf.tidy(() => {
        const [w, b] = params;
        const p = tf.softmax(tf.add(tf.matMul(data.xs, w), b)); // [n, K]
        // d/dlogits of the mean cross-entropy: (P - Y) / n.
        const g = tf.div(tf.sub(p, data.targets), n);
        const grads = [tf.add(tf.matMul(data.xs, g, true, false), tf.mul(w, 2 * l2)), tf.sum(g, 0)];
        const m = grads.map((grad, i) => tf.add(tf.mul(first[i], beta1), tf.mul(grad, 1 - beta1)));
        const v = grads.map((grad, i) => tf.add(tf.mul(second[i], beta2), tf.mul(tf.square(grad), 1 - beta2)));
        const updated = params.map((param, i) => {
          const step = tf.div(tf.div(m[i], 1 - beta1 ** s), tf.add(tf.sqrt(tf.div(v[i], 1 - beta2 ** s)), 1e-8));
          return tf.sub(param, tf.mul(step, learningRate));
        });
        return { updated, m, v };
      });
      tf.dispose([...params, ...first, ...second]);
      params = next.updated;
      first = next.m;
      second = next.v;
    }
    const [w, b] = params;
    const trainLoss = tf.tidy(() => objective(w, b).dataSync()[0]);
    return {
      dim,
      numClasses,
      moments,
      weights: w.dataSync() as Float32Array,
      bias: b.dataSync() as Float32Array,
      trainLoss,
    };
  } finally {
    tf.dispose([data.xs, data.targets, ...params, ...first, ...second]);
  }
}

/** Class probabilities [N * K] of features [N * dim] under a fitted probe. */
export function probeProbabilities(probe: SoftmaxProbe, features: Float32Array): Float32Array {
  const n = features.length / probe.dim;
  if (!Number.isInteger(n)) throw invalidOption('features', `a multiple of ${probe.dim} values`, features.length);
  return tf.tidy(() => {
    const x = tf.tensor2d(standardize(features, probe.dim, probe.moments), [n, probe.dim]);
    const w = tf.tensor2d(probe.weights, [probe.dim, probe.numClasses]);
    return tf.softmax(tf.add(tf.matMul(x, w), tf.tensor1d(probe.bias))).dataSync() as Float32Array;
  });
}

/** Row-wise argmax of probabilities [N * K]. */
function argmax(probabilities: Float32Array, k: number): Int32Array {
  const n = probabilities.length / k;
  return Int32Array.from({ length: n }, (_, i) => {
    let best = 0;
    for (let c = 1; c < k; c++) if (probabilities[i * k + c] > probabilities[i * k + best]) best = c;
    return best;
  });
}

export interface LinearProbeResult {
  trainAccuracy: number;
  testAccuracy: number;
  trainImages: number;
  testImages: number;
  featureDim: number;
  /** Final training loss (cross-entropy + penalty). */
  trainLoss: number;
}

/** Fits the probe on `train` and reports train and test accuracy. Leaves no tensors behind. */
export function linearProbe(
  train: FeatureSet,
  test: FeatureSet,
  numClasses: number,
  options: LinearProbeOptions = {},
): LinearProbeResult {
  if (test.dim !== train.dim) {
    throw new UsageError(`linearProbe: train features have ${train.dim} dims, test features ${test.dim}`);
  }
  if (test.features.length !== test.labels.length * test.dim) {
    throw new UsageError('linearProbe: features and labels disagree in count');
  }
  const probe = fitLinearProbe(train, numClasses, options);
  const accuracy = (set: FeatureSet) =>
    set.labels.length
      ? accuracyOf(argmax(probeProbabilities(probe, set.features), numClasses), set.labels)
      : Number.NaN;
  return {
    trainAccuracy: accuracy(train),
    testAccuracy: accuracy(test),
    trainImages: train.labels.length,
    testImages: test.labels.length,
    featureDim: train.dim,
    trainLoss: probe.trainLoss,
  };
}

/** Stratified fold of each labeled sample (-1 for unlabeled), seeded. */
export function stratifiedFolds(
  labels: Int32Array,
  numClasses: number,
  folds: number,
  seed: string | number,
): Int32Array {
  const out = new Int32Array(labels.length).fill(-1);
  const rng = createRng(seed).derive('folds');
  for (const members of indicesByClass(labels, numClasses)) {
    const order = rng.permutation(members.length);
    order.forEach((j, position) => {
      out[members[j]] = position % folds;
    });
  }
  return out;
}

/**
 * Out-of-fold class probabilities [N * K]: each labeled sample scored by a probe
 * fitted without its (stratified, seeded) fold; unlabeled rows stay uniform.
 */
export function outOfFoldProbabilities(
  features: Float32Array,
  dim: number,
  labels: Int32Array,
  numClasses: number,
  folds = 5,
  seed: string | number = 0,
  options: LinearProbeOptions = {},
): Float32Array {
  if (!Number.isInteger(folds) || folds < 2) throw invalidOption('folds', 'an integer >= 2', folds);
  if (features.length !== labels.length * dim)
    throw invalidOption('features', `${labels.length} x ${dim} values`, features.length);
  const fold = stratifiedFolds(labels, numClasses, folds, seed);
  const out = new Float32Array(labels.length * numClasses).fill(1 / numClasses);
  const set: FeatureSet = { features, labels, dim };
  for (let f = 0; f < folds; f++) {
    const test = Int32Array.from({ length: labels.length }, (_, i) => i).filter((i) => fold[i] === f);
    const train = Int32Array.from({ length: labels.length }, (_, i) => i).filter((i) => fold[i] >= 0 && fold[i] !== f);
    if (test.length === 0 || train.length === 0) continue;
    const probe = fitLinearProbe(set, numClasses, options, train);
    const probs = probeProbabilities(probe, rowsOf(set, test).x);
    test.forEach((p, i) => {
      out.set(probs.subarray(i * numClasses, (i + 1) * numClasses), p * numClasses);
    });
  }
  return out;
}
