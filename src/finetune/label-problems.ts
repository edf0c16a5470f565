/**
 * Label problems: which training samples are likely mislabeled, and how
 * imbalanced the classes are. A sample is suspicious when its given label
 * disagrees with
 *  (a) its neighbourhood in backbone feature space: leave-one-out weighted kNN
 *      votes (cosine similarity, weight exp(similarity / temperature)), and
 *  (b) a classifier that never saw it: out-of-fold probabilities of the linear
 *      probe on the features (k-fold, stratified), or held-out probabilities
 *      the caller supplies.
 * Score = 1 - weighted mean of the two probabilities of the given label; the
 * suggested label is the argmax of the weighted mean of the two distributions.
 */
import { writeArrowTable } from '../util/arrow.js';
import { invalidOption } from '../util/errors.js';
import { effectiveNumberWeights } from './losses.js';

// The two opinions come from the probes (one kNN, one linear probe for every caller).
export { knnLabelDistribution } from '../probes/knn.js';
export { outOfFoldProbabilities, stratifiedFolds } from '../probes/linear-probe.js';

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
