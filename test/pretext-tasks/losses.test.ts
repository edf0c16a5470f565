import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  accuracyFromLogits,
  contrastiveAccuracy,
  crossEntropyFromLogits,
  ntXentLoss,
} from '../../pretext-tasks/losses.js';
import { initEngine } from '../../src/engine/backend.js';
import { createRng, type Rng } from '../../src/util/rng.js';

/** A [rows, cols] matrix of seeded normal numbers, as nested arrays. */
function randomMatrix(rows: number, cols: number, rng: Rng, scale = 1): number[][] {
  return Array.from({ length: rows }, () => Array.from({ length: cols }, () => scale * rng.normal()));
}

/** Plain-loop cross-entropy: -1/N sum_n log softmax(l_n)[y_n], with the max subtracted for stability. */
function referenceCrossEntropy(logits: number[][], labels: number[]): number {
  let total = 0;
  for (let n = 0; n < logits.length; n++) {
    let max = -Infinity;
    for (const v of logits[n]) max = Math.max(max, v);
    let sum = 0;
    for (const v of logits[n]) sum += Math.exp(v - max);
    total += -(logits[n][labels[n]] - max - Math.log(sum));
  }
  return total / logits.length;
}

function cosine(a: number[], b: number[]): number {
  let dot = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return dot / (Math.max(Math.sqrt(na), 1e-12) * Math.max(Math.sqrt(nb), 1e-12));
}

/**
 * SimCLR eq. (1), as written: for each of the 2N augmented examples k = 1..2N
 * (views interleaved as 2k-1, 2k in the paper; here z1 rows then z2 rows),
 * l(i, j) = -log exp(sim(z_i, z_j)/t) / sum_{k != i} exp(sim(z_i, z_k)/t),
 * L = 1/(2N) sum over all positive pairs (i, j) and (j, i).
 */
function referenceNtXent(z1: number[][], z2: number[][], temperature: number): number {
  const z = [...z1, ...z2];
  const n = z1.length;
  let total = 0;
  for (let i = 0; i < 2 * n; i++) {
    const j = i < n ? i + n : i - n;
    let denominator = 0;
    for (let k = 0; k < 2 * n; k++) {
      if (k !== i) denominator += Math.exp(cosine(z[i], z[k]) / temperature);
    }
    total += -Math.log(Math.exp(cosine(z[i], z[j]) / temperature) / denominator);
  }
  return total / (2 * n);
}

/** Fraction of the 2N examples whose most similar other example is their positive. */
function referenceContrastiveAccuracy(z1: number[][], z2: number[][]): number {
  const z = [...z1, ...z2];
  const n = z1.length;
  let correct = 0;
  for (let i = 0; i < 2 * n; i++) {
    let best = -1;
    let bestSimilarity = -Infinity;
    for (let k = 0; k < 2 * n; k++) {
      if (k === i) continue;
      const s = cosine(z[i], z[k]);
      if (s > bestSimilarity) {
        bestSimilarity = s;
        best = k;
      }
    }
    if (best === (i < n ? i + n : i - n)) correct++;
  }
  return correct / (2 * n);
}

function scalar(t: tf.Scalar): number {
  const v = t.dataSync()[0];
  t.dispose();
  return v;
}

describe('pretext losses against plain-loop references', () => {
  beforeAll(() => {
    initEngine({ quiet: true });
    expect(tf.getBackend()).toBe('tensorflow');
  });

  it('cross-entropy from logits matches -mean log softmax', () => {
    const rng = createRng('ce');
    for (const [rows, classes, scale] of [
      [5, 4, 1],
      [7, 30, 3],
      [3, 1000, 10],
    ]) {
      const logits = randomMatrix(rows, classes, rng, scale);
      const labels = Array.from({ length: rows }, () => rng.int(classes));
      const got = tf.tidy(() => scalar(crossEntropyFromLogits(tf.tensor2d(logits), tf.tensor1d(labels, 'int32'))));
      expect(Math.abs(got - referenceCrossEntropy(logits, labels))).toBeLessThan(1e-5);
    }
  });

  it('accuracy from logits counts argmax hits', () => {
    const logits = [
      [0.1, 2, 0.3],
      [5, 1, 0],
      [0, 0, 1],
      [1, 3, 2],
    ];
    const labels = [1, 0, 2, 2];
    const got = tf.tidy(() => scalar(accuracyFromLogits(tf.tensor2d(logits), tf.tensor1d(labels, 'int32'))));
    expect(got).toBeCloseTo(0.75, 6);
  });

  it('NT-Xent matches SimCLR eq. (1) for several temperatures and sizes', () => {
    const rng = createRng('ntxent');
    for (const [batch, dim, temperature] of [
      [2, 3, 0.5],
      [6, 8, 0.1],
      [16, 32, 1.0],
      [5, 128, 0.07],
    ]) {
      const z1 = randomMatrix(batch, dim, rng);
      const z2 = randomMatrix(batch, dim, rng);
      const got = tf.tidy(() => scalar(ntXentLoss(tf.tensor2d(z1), tf.tensor2d(z2), temperature)));
      const expected = referenceNtXent(z1, z2, temperature);
      expect(Math.abs(got - expected)).toBeLessThan(1e-5 * Math.max(1, Math.abs(expected)));
    }
  });

  it('NT-Xent is low when the views agree and high when they do not', () => {
    const rng = createRng('agree');
    const z1 = randomMatrix(8, 16, rng);
    const close = z1.map((row) => row.map((v) => v + 0.01 * rng.normal()));
    const other = randomMatrix(8, 16, rng);
    const agree = tf.tidy(() => scalar(ntXentLoss(tf.tensor2d(z1), tf.tensor2d(close), 0.5)));
    const disagree = tf.tidy(() => scalar(ntXentLoss(tf.tensor2d(z1), tf.tensor2d(other), 0.5)));
    expect(agree).toBeLessThan(disagree);
    expect(Math.abs(agree - referenceNtXent(z1, close, 0.5))).toBeLessThan(1e-5);
  });

  it('contrastive top-1 accuracy matches the plain loop', () => {
    const rng = createRng('acc');
    const z1 = randomMatrix(10, 6, rng);
    const z2 = z1.map((row, i) => row.map((v) => v + (i < 5 ? 0.05 : 3) * rng.normal()));
    const got = tf.tidy(() => scalar(contrastiveAccuracy(tf.tensor2d(z1), tf.tensor2d(z2))));
    expect(got).toBeCloseTo(referenceContrastiveAccuracy(z1, z2), 6);
  });

  it('NT-Xent rejects a non-positive temperature and mismatched shapes', () => {
    tf.tidy(() => {
      const z = tf.ones([2, 3]) as tf.Tensor2D;
      expect(() => ntXentLoss(z, z, 0)).toThrow('ntXentLoss needs a positive temperature, got 0');
      expect(() => ntXentLoss(z, tf.ones([3, 3]) as tf.Tensor2D, 0.5)).toThrow(/same shape/);
    });
  });

  it('losses leave no tensors behind', () => {
    const before = tf.memory().numTensors;
    const z1 = tf.randomNormal([4, 5], 0, 1, 'float32', 1) as tf.Tensor2D;
    const z2 = tf.randomNormal([4, 5], 0, 1, 'float32', 2) as tf.Tensor2D;
    ntXentLoss(z1, z2, 0.5).dispose();
    contrastiveAccuracy(z1, z2).dispose();
    z1.dispose();
    z2.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});
