/**
 * Label problems: which training samples are likely mislabeled, and how
 * imbalanced the classes are. A sample is suspicious when its given label
 * disagrees with
 *  (a) its neighbourhood in backbone feature space: leave-one-out weighted kNN
 *      votes (cosine similarity, weight exp(similarity / temperature)), and
 *  (b) a classifier that never saw it: out-of-fold probabilities of a softmax
 *      regression on the features (k-fold, stratified), or held-out
 *      probabilities the caller supplies.
 * Score = 1 - weighted mean of the two probabilities of the given label; the
 * suggested label is the argmax of the weighted mean of the two distributions.
 */
import * as tf from '@tensorflow/tfjs';
import { writeArrowTable } from '../util/arrow.js';
import { invalidOption } from '../util/errors.js';
import { createRng } from '../util/rng.js';
import { effectiveNumberWeights } from './losses.js';
import { indicesByClass } from './sampler.js';

/**
 * Leave-one-out kNN class distribution [N * K] of each labeled sample from its
 * k most cosine-similar other samples. features [N * dim]; labels < 0 neither vote nor get scored.
 */
export function knnLabelDistribution(
  features: Float32Array,
  dim: number,
  labels: Int32Array,
  numClasses: number,
  k = 10,
  temperature = 0.1,
): Float32Array {
  const n = labels.length;
  if (features.length !== n * dim) throw invalidOption('features', `${n} x ${dim} values`, features.length);
  const kk = Math.min(k, n - 1);
  if (kk < 1) throw invalidOption('k', 'at least 1 neighbour (2 or more samples)', k);
  const out = new Float32Array(n * numClasses);
  const bank = tf.tidy(() => {
    const f = tf.tensor2d(features, [n, dim]);
    return tf.div(f, tf.maximum(tf.norm(f, 'euclidean', 1, true), 1e-12)) as tf.Tensor2D;
  });
  const chunk = Math.max(1, Math.floor(2_000_000 / n));
  try {
    for (let start = 0; start < n; start += chunk) {
      const size = Math.min(chunk, n - start);
      const [values, indices] = tf.tidy(() => {
        const query = bank.slice([start, 0], [size, dim]);
        const sim = tf.matMul(query, bank, false, true); // [size, N]
        // Exclude each sample itself: -inf on its own column.
        const self = tf.oneHot(tf.range(start, start + size, 1, 'int32'), n).toFloat();
        const masked = tf.sub(sim, tf.mul(self, 1e9));
        const top = tf.topk(masked, kk);
        return [top.values.dataSync(), top.indices.dataSync()];
      });
      for (let r = 0; r < size; r++) {
        const row = (start + r) * numClasses;
        let total = 0;
        for (let j = 0; j < kk; j++) {
          const label = labels[indices[r * kk + j]];
          if (label < 0) continue;
          // exp((s - 1) / T) is proportional to exp(s / T) and cannot overflow (s <= 1); the factor cancels.
          const w = Math.exp((values[r * kk + j] - 1) / temperature);
          out[row + label] += w;
          total += w;
        }
        if (total > 0) for (let c = 0; c < numClasses; c++) out[row + c] /= total;
        else for (let c = 0; c < numClasses; c++) out[row + c] = 1 / numClasses;
      }
    }
  } finally {
    bank.dispose();
  }
  return out;
}

export interface SoftmaxRegressionOptions {
  steps?: number;
  learningRate?: number;
  /** L2 penalty on the weights. */
  l2?: number;
}

/**
 * Trains a softmax regression on standardised features of `train` positions and
 * returns probabilities [|test| * K] for `test` positions. Full-batch Adam.
 */
export function softmaxRegression(
  features: Float32Array,
  dim: number,
  labels: Int32Array,
  numClasses: number,
  train: Int32Array,
  test: Int32Array,
  options: SoftmaxRegressionOptions = {},
): Float32Array {
  const steps = options.steps ?? 150;
  const l2 = options.l2 ?? 1e-3;
  const gather = (positions: Int32Array) => {
    const out = new Float32Array(positions.length * dim);
    positions.forEach((p, i) => {
      out.set(features.subarray(p * dim, (p + 1) * dim), i * dim);
    });
    return out;
  };
  const xTrain = tf.tensor2d(gather(train), [train.length, dim]);
  const xTest = tf.tensor2d(gather(test), [test.length, dim]);
  const y = tf.tensor1d(
    Array.from(train, (p) => labels[p]),
    'int32',
  );
  const moments = tf.tidy(() => {
    const m = tf.moments(xTrain, 0);
    return { mean: m.mean, std: tf.sqrt(tf.add(m.variance, 1e-6)) };
  });
  // Full-batch gradient descent with Adam, gradients written out (X^T (P - Y) / n + 2 l2 W):
  // a handful of ops per step instead of an autodiff tape.
  const lr = options.learningRate ?? 0.05;
  const state = tf.tidy(() => ({
    xs: tf.div(tf.sub(xTrain, moments.mean), moments.std) as tf.Tensor2D, // [n, D]
    targets: tf.oneHot(y, numClasses).toFloat(), // [n, K]
  }));
  let w: tf.Tensor2D = tf.zeros([dim, numClasses]);
  let b: tf.Tensor1D = tf.zeros([numClasses]);
  let mW: tf.Tensor = tf.zerosLike(w);
  let vW: tf.Tensor = tf.zerosLike(w);
  let mB: tf.Tensor = tf.zerosLike(b);
  let vB: tf.Tensor = tf.zerosLike(b);
  const beta1 = 0.9;
  const beta2 = 0.999;
  try {
    for (let s = 1; s <= steps; s++) {
      const next = tf.tidy(() => {
        const p = tf.softmax(tf.add(tf.matMul(state.xs, w), b)); // [n, K]
        const g = tf.div(tf.sub(p, state.targets), train.length);
        const gW = tf.add(tf.matMul(state.xs, g, true, false), tf.mul(w, 2 * l2));
        const gB = tf.sum(g, 0);
        const step = (param: tf.Tensor, grad: tf.Tensor, m: tf.Tensor, v: tf.Tensor) => {
          const m2 = tf.add(tf.mul(m, beta1), tf.mul(grad, 1 - beta1));
          const v2 = tf.add(tf.mul(v, beta2), tf.mul(tf.square(grad), 1 - beta2));
          const update = tf.div(tf.div(m2, 1 - beta1 ** s), tf.add(tf.sqrt(tf.div(v2, 1 - beta2 ** s)), 1e-8));
          return [tf.sub(param, tf.mul(update, lr)), m2, v2];
        };
        const [w2, mW2, vW2] = step(w, gW, mW, vW);
        const [b2, mB2, vB2] = step(b, gB, mB, vB);
        return { w2, mW2, vW2, b2, mB2, vB2 };
      });
      tf.dispose([w, b, mW, vW, mB, vB]);
      w = next.w2 as tf.Tensor2D;
      b = next.b2 as tf.Tensor1D;
      mW = next.mW2;
      vW = next.vW2;
      mB = next.mB2;
      vB = next.vB2;
    }
    return tf.tidy(() => {
      const xt = tf.div(tf.sub(xTest, moments.mean), moments.std) as tf.Tensor2D;
      return tf.softmax(tf.add(tf.matMul(xt, w), b)).dataSync() as Float32Array;
    });
  } finally {
    tf.dispose([xTrain, xTest, y, moments.mean, moments.std, state.xs, state.targets, w, b, mW, vW, mB, vB]);
  }
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

/** Out-of-fold class probabilities [N * K]: each sample scored by a regression trained without its fold. */
export function outOfFoldProbabilities(
  features: Float32Array,
  dim: number,
  labels: Int32Array,
  numClasses: number,
  folds = 5,
  seed: string | number = 0,
  options: SoftmaxRegressionOptions = {},
): Float32Array {
  if (!Number.isInteger(folds) || folds < 2) throw invalidOption('folds', 'an integer >= 2', folds);
  const fold = stratifiedFolds(labels, numClasses, folds, seed);
  const out = new Float32Array(labels.length * numClasses).fill(1 / numClasses);
  for (let f = 0; f < folds; f++) {
    const test = Int32Array.from({ length: labels.length }, (_, i) => i).filter((i) => fold[i] === f);
    const train = Int32Array.from({ length: labels.length }, (_, i) => i).filter((i) => fold[i] >= 0 && fold[i] !== f);
    if (test.length === 0 || train.length === 0) continue;
    const probs = softmaxRegression(features, dim, labels, numClasses, train, test, options);
    test.forEach((p, i) => {
      out.set(probs.subarray(i * numClasses, (i + 1) * numClasses), p * numClasses);
    });
  }
  return out;
}

export interface LabelReview {
  /** Positions sorted from most to least suspicious (labeled samples only). */
  order: Int32Array;
  /** Per position: 1 - combined probability of the given label (higher = more suspicious). */
  score: Float32Array;
  /** Per position: argmax of the combined distribution. */
  suggested: Int32Array;
  knnGivenProbability?: Float32Array;
  classifierGivenProbability?: Float32Array;
}

/** Combines kNN and classifier distributions [N * K] into a ranking of suspicious labels. */
export function rankSuspiciousLabels(
  labels: Int32Array,
  numClasses: number,
  sources: { knn?: Float32Array; classifier?: Float32Array },
  weights: { knn: number; classifier: number } = { knn: 0.5, classifier: 0.5 },
): LabelReview {
  const parts = (
    [
      [sources.knn, weights.knn],
      [sources.classifier, weights.classifier],
    ] as Array<[Float32Array | undefined, number]>
  ).filter(([p, w]) => p && w > 0) as Array<[Float32Array, number]>;
  if (parts.length === 0)
    throw invalidOption('sources', 'kNN and/or classifier probabilities with a weight > 0', sources);
  const totalWeight = parts.reduce((a, [, w]) => a + w, 0);
  const n = labels.length;
  const score = new Float32Array(n);
  const suggested = new Int32Array(n).fill(-1);
  const given = (p?: Float32Array) =>
    p ? Float32Array.from(labels, (y, i) => (y >= 0 ? p[i * numClasses + y] : Number.NaN)) : undefined;
  for (let i = 0; i < n; i++) {
    if (labels[i] < 0) continue;
    let best = 0;
    let bestValue = -1;
    for (let c = 0; c < numClasses; c++) {
      let v = 0;
      for (const [p, w] of parts) v += (w * p[i * numClasses + c]) / totalWeight;
      if (v > bestValue) {
        bestValue = v;
        best = c;
      }
      if (c === labels[i]) score[i] = 1 - v;
    }
    suggested[i] = best;
  }
  const order = Int32Array.from({ length: n }, (_, i) => i)
    .filter((i) => labels[i] >= 0)
    .sort((a, b) => score[b] - score[a] || a - b);
  return {
    order,
    score,
    suggested,
    knnGivenProbability: given(sources.knn),
    classifierGivenProbability: given(sources.classifier),
  };
}

/** Fraction of the top `k` of `order` that are truly wrong labels. */
export function precisionAtK(order: ArrayLike<number>, isWrong: (position: number) => boolean, k: number): number {
  const kk = Math.min(k, order.length);
  let hits = 0;
  for (let i = 0; i < kk; i++) if (isWrong(order[i])) hits++;
  return kk > 0 ? hits / kk : 0;
}

export interface ClassBalance {
  className: string;
  count: number;
  fraction: number;
  /** Inverse-frequency style weight relative to the largest class (largest = 1). */
  relativeToLargest: number;
  /** Class-balanced weight from the effective number of samples (beta 0.999). */
  effectiveNumberWeight: number;
}

export interface ImbalanceSummary {
  classes: ClassBalance[];
  total: number;
  /** Largest class count / smallest non-empty class count. */
  imbalanceRatio: number;
  /** Classes with less than half the mean count. */
  minorityClasses: string[];
  emptyClasses: string[];
}

export function imbalanceSummary(labels: Int32Array, classNames: string[]): ImbalanceSummary {
  const counts = new Array<number>(classNames.length).fill(0);
  for (const y of labels) if (y >= 0) counts[y]++;
  const total = counts.reduce((a, b) => a + b, 0);
  const nonEmpty = counts.filter((c) => c > 0);
  const largest = Math.max(...counts, 1);
  const mean = total / Math.max(1, classNames.length);
  const weights = effectiveNumberWeights(counts, 0.999);
  return {
    classes: counts.map((count, i) => ({
      className: classNames[i],
      count,
      fraction: total > 0 ? count / total : 0,
      relativeToLargest: count / largest,
      effectiveNumberWeight: weights[i],
    })),
    total,
    imbalanceRatio: nonEmpty.length ? Math.max(...nonEmpty) / Math.min(...nonEmpty) : 0,
    minorityClasses: classNames.filter((_, i) => counts[i] > 0 && counts[i] < mean / 2),
    emptyClasses: classNames.filter((_, i) => counts[i] === 0),
  };
}

/** Writes the review as an Arrow file: rank, index, path, given label, suggested label, score, and both probabilities. */
export async function writeLabelReview(
  file: string,
  review: LabelReview,
  labels: Int32Array,
  classNames: string[],
  describe: (position: number) => string,
  sourceIndices?: Int32Array,
  metadata: Record<string, string> = {},
): Promise<void> {
  const order = Array.from(review.order);
  await writeArrowTable(
    file,
    {
      rank: Int32Array.from(order, (_, r) => r + 1),
      index: Int32Array.from(order, (p) => (sourceIndices ? sourceIndices[p] : p)),
      path: order.map((p) => describe(p)),
      given_label: order.map((p) => classNames[labels[p]]),
      suggested_label: order.map((p) => classNames[review.suggested[p]]),
      score: Float32Array.from(order, (p) => review.score[p]),
      knn_given_probability: Float32Array.from(order, (p) => review.knnGivenProbability?.[p] ?? Number.NaN),
      classifier_given_probability: Float32Array.from(
        order,
        (p) => review.classifierGivenProbability?.[p] ?? Number.NaN,
      ),
    },
    metadata,
  );
}
