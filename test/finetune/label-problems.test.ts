import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initEngine } from '../../src/engine/backend.js';
import {
  imbalanceSummary,
  knnLabelDistribution,
  outOfFoldProbabilities,
  precisionAtK,
  rankSuspiciousLabels,
  stratifiedFolds,
} from '../../src/finetune/label-problems.js';
import { createRng } from '../../src/util/rng.js';

/** 4 well-separated Gaussian clusters in 8-D, 30 samples each. */
function clusters(seed: number) {
  const rng = createRng(seed);
  const dim = 8;
  const n = 120;
  const features = new Float32Array(n * dim);
  const truth = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const c = i % 4;
    truth[i] = c;
    for (let d = 0; d < dim; d++) features[i * dim + d] = (d === c ? 4 : d === c + 4 ? 2 : 0) + 0.6 * rng.normal();
  }
  return { features, truth, dim, n };
}

describe('label problems', () => {
  beforeAll(() => {
    expect(initEngine().backend).toBe('tensorflow');
  });

  it('kNN distribution is leave-one-out and matches a plain loop', () => {
    // 1-D features on a circle: cosine similarity orders neighbours by angle.
    const angles = [0, 0.1, 0.2, 1.5, 1.6, 1.7];
    const features = Float32Array.from(angles.flatMap((a) => [Math.cos(a), Math.sin(a)]));
    const labels = Int32Array.from([0, 0, 1, 1, 1, 0]);
    const p = knnLabelDistribution(features, 2, labels, 2, 2, 0.1);
    // Sample 0: neighbours 1 (label 0, sim cos 0.1) and 2 (label 1, sim cos 0.2).
    const w1 = Math.exp(Math.cos(0.1) / 0.1);
    const w2 = Math.exp(Math.cos(0.2) / 0.1);
    expect(p[0]).toBeCloseTo(w1 / (w1 + w2), 5);
    expect(p[1]).toBeCloseTo(w2 / (w1 + w2), 5);
    // Sample 5 (label 0) has only label-1 neighbours: its own label gets 0 (it does not vote for itself).
    expect(p[5 * 2]).toBeCloseTo(0, 6);
  });

  it('ranks deliberately flipped labels on top of a separable set', () => {
    const { features, truth, dim, n } = clusters(1);
    const rng = createRng(2);
    const labels = Int32Array.from(truth);
    const flipped = new Set<number>();
    for (const i of Array.from(rng.permutation(n)).slice(0, 12)) {
      labels[i] = (truth[i] + 1 + rng.int(3)) % 4;
      flipped.add(i);
    }
    const before = tf.memory().numTensors;
    const knn = knnLabelDistribution(features, dim, labels, 4, 10);
    const oof = outOfFoldProbabilities(features, dim, labels, 4, 3, 3, { steps: 60 });
    expect(tf.memory().numTensors).toBe(before);
    for (const sources of [{ knn }, { classifier: oof }, { knn, classifier: oof }]) {
      const review = rankSuspiciousLabels(labels, 4, sources);
      const p12 = precisionAtK(review.order, (i) => flipped.has(i), 12);
      expect(p12).toBeGreaterThanOrEqual(0.9);
      // The suggestion for a flipped sample is mostly its true class.
      const fixed = [...flipped].filter((i) => review.suggested[i] === truth[i]).length;
      expect(fixed).toBeGreaterThanOrEqual(10);
    }
    const review = rankSuspiciousLabels(labels, 4, { knn, classifier: oof });
    expect(review.order).toHaveLength(n);
    expect(review.score[review.order[0]]).toBeGreaterThanOrEqual(review.score[review.order[n - 1]]);
  });

  it('stratified folds, precision at k, imbalance summary', () => {
    const labels = Int32Array.from([0, 0, 0, 0, 1, 1, -1, 1, 1]);
    const folds = stratifiedFolds(labels, 2, 2, 0);
    expect(folds[6]).toBe(-1);
    expect([0, 1, 2, 3].filter((i) => folds[i] === 0)).toHaveLength(2);
    expect(precisionAtK([3, 1, 2], (i) => i !== 2, 2)).toBe(1);
    expect(precisionAtK([3, 1, 2], (i) => i === 2, 3)).toBeCloseTo(1 / 3, 10);
    const s = imbalanceSummary(Int32Array.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 2]), ['a', 'b', 'c', 'd']);
    expect(s.total).toBe(13);
    expect(s.imbalanceRatio).toBe(10);
    expect(s.classes[1]).toMatchObject({ count: 1, relativeToLargest: 0.1 });
    // mean count 13 / 4 = 3.25: b (1) is below half of it, c (2) is not.
    expect(s.minorityClasses).toEqual(['b']);
    expect(s.emptyClasses).toEqual(['d']);
    expect(s.classes[1].effectiveNumberWeight).toBeGreaterThan(s.classes[0].effectiveNumberWeight);
  });
});
