/**
 * The losses of BYOL, SimSiam, Barlow Twins, VICReg, MoCo and DINO against
 * plain-loop ports of each paper's formula (double precision, no tensors), and
 * the stop-gradient and queue helpers they use.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  barlowTwinsLoss,
  byolLoss,
  dinoCenter,
  dinoLoss,
  enqueue,
  infoNceLoss,
  negativeCosineSimilarity,
  normalizedMse,
  simsiamLoss,
  stopGradient,
  vicregLoss,
  vicregTerms,
} from '../../pretext-tasks/losses.js';
import { initEngine } from '../../src/engine/backend.js';
import { createRng, type Rng } from '../../src/util/rng.js';

type Matrix = number[][];

function randomMatrix(rows: number, cols: number, rng: Rng, scale = 1, shift = 0): Matrix {
  return Array.from({ length: rows }, () => Array.from({ length: cols }, () => shift + scale * rng.normal()));
}

const dot = (a: number[], b: number[]) => a.reduce((s, v, i) => s + v * b[i], 0);
const norm = (a: number[]) => Math.max(Math.sqrt(dot(a, a)), 1e-12);
const unit = (a: number[]) => a.map((v) => v / norm(a));
const cosine = (a: number[], b: number[]) => dot(a, b) / (norm(a) * norm(b));
const mean = (values: number[]) => values.reduce((s, v) => s + v, 0) / values.length;
const column = (m: Matrix, j: number) => m.map((row) => row[j]);

/** BYOL eq. (2): mean over rows of ||q/||q|| - z/||z||||². */
function refNormalizedMse(q: Matrix, z: Matrix): number {
  return mean(
    q.map((row, n) => {
      const a = unit(row);
      const b = unit(z[n]);
      return a.reduce((s, v, i) => s + (v - b[i]) ** 2, 0);
    }),
  );
}

/** Barlow Twins eq. (1) with columns standardised by the biased std (BatchNorm1d, eps 1e-5). */
function refBarlow(z1: Matrix, z2: Matrix, lambda: number): number {
  const n = z1.length;
  const d = z1[0].length;
  const standardise = (m: Matrix) => {
    const out = m.map((row) => row.slice());
    for (let j = 0; j < d; j++) {
      const values = column(m, j);
      const mu = mean(values);
      const variance = mean(values.map((v) => (v - mu) ** 2));
      for (let b = 0; b < n; b++) out[b][j] = (m[b][j] - mu) / Math.sqrt(variance + 1e-5);
    }
    return out;
  };
  const a = standardise(z1);
  const b = standardise(z2);
  let loss = 0;
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < d; j++) {
      let c = 0;
      for (let k = 0; k < n; k++) c += a[k][i] * b[k][j];
      c /= n;
      loss += i === j ? (1 - c) ** 2 : lambda * c * c;
    }
  }
  return loss;
}

/** VICReg eqs. (1)-(5): the three terms, variance averaged and covariance summed over the two branches. */
function refVicreg(z1: Matrix, z2: Matrix): { invariance: number; variance: number; covariance: number } {
  const n = z1.length;
  const d = z1[0].length;
  let invariance = 0;
  for (let b = 0; b < n; b++) for (let j = 0; j < d; j++) invariance += (z1[b][j] - z2[b][j]) ** 2;
  invariance /= n * d;
  const v = (z: Matrix) => {
    let total = 0;
    for (let j = 0; j < d; j++) {
      const values = column(z, j);
      const mu = mean(values);
      const variance = values.reduce((s, x) => s + (x - mu) ** 2, 0) / (n - 1);
      total += Math.max(0, 1 - Math.sqrt(variance + 1e-4));
    }
    return total / d;
  };
  const c = (z: Matrix) => {
    const mu = Array.from({ length: d }, (_, j) => mean(column(z, j)));
    let total = 0;
    for (let i = 0; i < d; i++) {
      for (let j = 0; j < d; j++) {
        if (i === j) continue;
        let cov = 0;
        for (let b = 0; b < n; b++) cov += (z[b][i] - mu[i]) * (z[b][j] - mu[j]);
        total += (cov / (n - 1)) ** 2;
      }
    }
    return total / d;
  };
  return { invariance, variance: (v(z1) + v(z2)) / 2, covariance: c(z1) + c(z2) };
}

/** MoCo eq. (1): -log exp(q.k+/t) / (exp(q.k+/t) + sum_i exp(q.k_i/t)), q and k normalised, averaged. */
function refInfoNce(q: Matrix, k: Matrix, queue: Matrix, t: number): number {
  return mean(
    q.map((row, n) => {
      const qn = unit(row);
      const logits = [dot(qn, unit(k[n])) / t, ...queue.map((neg) => dot(qn, neg) / t)];
      const max = Math.max(...logits);
      const logSum = max + Math.log(logits.reduce((s, l) => s + Math.exp(l - max), 0));
      return logSum - logits[0];
    }),
  );
}

const softmax = (row: number[]) => {
  const max = Math.max(...row);
  const e = row.map((v) => Math.exp(v - max));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
};

/** DINO Algorithm 1: H(t, s) = -sum p_t log p_s over pairs of different views, averaged over pairs and rows. */
function refDino(teacher: Matrix[], student: Matrix[], center: number[], tt: number, ts: number): number {
  let total = 0;
  let pairs = 0;
  teacher.forEach((t, i) => {
    student.forEach((s, j) => {
      if (i === j) return;
      pairs++;
      total += mean(
        t.map((row, b) => {
          const pt = softmax(row.map((v, k) => (v - center[k]) / tt));
          const ps = softmax(s[b].map((v) => v / ts));
          return -pt.reduce((acc, p, k) => acc + p * Math.log(ps[k]), 0);
        }),
      );
    });
  });
  return total / pairs;
}

const value = (f: () => tf.Scalar) => tf.tidy(() => f().dataSync()[0]);
const t2 = (m: Matrix) => tf.tensor2d(m);

/** Every entry of `actual` close to the same entry of `expected` (to `digits` decimals). */
function expectAllClose(actual: number[], expected: number[], digits: number): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < actual.length; i++) expect(actual[i], `entry ${i}`).toBeCloseTo(expected[i], digits);
}

beforeAll(() => {
  initEngine({ quiet: true });
});

describe('method losses match plain loops of their formulas', () => {
  const rng = createRng('method-losses');
  const q1 = randomMatrix(6, 5, rng);
  const q2 = randomMatrix(6, 5, rng);
  const z1 = randomMatrix(6, 5, rng, 2, 0.5);
  const z2 = randomMatrix(6, 5, rng, 0.7, -0.2);

  it('BYOL: normalised MSE = 2 - 2 cos, symmetric sum', () => {
    const expected = refNormalizedMse(q1, z2);
    expect(value(() => normalizedMse(t2(q1), t2(z2)))).toBeCloseTo(expected, 5);
    expect(expected).toBeCloseTo(2 - 2 * mean(q1.map((r, n) => cosine(r, z2[n]))), 10);
    expect(value(() => byolLoss(t2(q1), t2(q2), t2(z1), t2(z2)))).toBeCloseTo(
      refNormalizedMse(q1, z2) + refNormalizedMse(q2, z1),
      5,
    );
  });

  it('SimSiam: D(p1, z2)/2 + D(p2, z1)/2 with D the negative cosine', () => {
    const d = (p: Matrix, z: Matrix) => -mean(p.map((r, n) => cosine(r, z[n])));
    expect(value(() => negativeCosineSimilarity(t2(q1), t2(z2)))).toBeCloseTo(d(q1, z2), 5);
    expect(value(() => simsiamLoss(t2(q1), t2(q2), t2(z1), t2(z2)))).toBeCloseTo(d(q1, z2) / 2 + d(q2, z1) / 2, 5);
  });

  it('Barlow Twins: (1 - C_ii)² + lambda C_ij² of the standardised cross-correlation', () => {
    for (const lambda of [0.0051, 0.5]) {
      expect(value(() => barlowTwinsLoss(t2(z1), t2(z2), lambda))).toBeCloseTo(refBarlow(z1, z2, lambda), 4);
    }
    // Identical, decorrelated views: C is near the identity and the loss near 0.
    const same = randomMatrix(200, 3, rng);
    expect(refBarlow(same, same, 0.0051)).toBeLessThan(0.2);
  });

  it('VICReg: invariance, variance and covariance terms and their weighted sum', () => {
    const expected = refVicreg(z1, z2);
    const got = tf.tidy(() => {
      const terms = vicregTerms(t2(z1), t2(z2));
      return {
        invariance: terms.invariance.dataSync()[0],
        variance: terms.variance.dataSync()[0],
        covariance: terms.covariance.dataSync()[0],
      };
    });
    expect(got.invariance).toBeCloseTo(expected.invariance, 5);
    expect(got.variance).toBeCloseTo(expected.variance, 5);
    expect(got.covariance).toBeCloseTo(expected.covariance, 4);
    const weights = { invariance: 25, variance: 25, covariance: 1 };
    expect(value(() => vicregLoss(t2(z1), t2(z2), weights))).toBeCloseTo(
      25 * expected.invariance + 25 * expected.variance + expected.covariance,
      3,
    );
  });

  it('MoCo: InfoNCE of each query against its key and the queue', () => {
    const queue = randomMatrix(11, 5, rng).map(unit);
    for (const t of [0.07, 0.2, 1]) {
      expect(value(() => infoNceLoss(t2(q1), t2(z1), t2(queue), t))).toBeCloseTo(refInfoNce(q1, z1, queue, t), 4);
    }
  });

  it('MoCo queue: FIFO ring of normalised keys, the pointer wraps', () => {
    const queue = randomMatrix(7, 3, rng);
    const keys = randomMatrix(4, 3, rng);
    const { rows, pointer } = tf.tidy(() => {
      const out = enqueue(t2(queue), t2(keys), tf.tensor1d([5], 'int32'));
      return { rows: out.queue.arraySync(), pointer: Array.from(out.pointer.dataSync()) };
    });
    const expected = queue.map((r) => r.slice());
    keys.forEach((k, j) => {
      expected[(5 + j) % 7] = unit(k);
    });
    expect(pointer).toEqual([2]);
    expectAllClose(rows.flat(), expected.flat(), 5);
  });

  it('DINO: cross-entropy of centred, sharpened teacher and student over pairs of different views', () => {
    const globals = [randomMatrix(4, 6, rng), randomMatrix(4, 6, rng)];
    const locals = [randomMatrix(4, 6, rng), randomMatrix(4, 6, rng), randomMatrix(4, 6, rng)];
    const student = [...globals.map((g) => g.map((r) => r.map((v) => v * 0.9))), ...locals];
    const center = [0.1, -0.2, 0.3, 0, 0.05, -0.1];
    for (const [tt, ts] of [
      [0.04, 0.1],
      [0.07, 0.1],
    ]) {
      const got = value(() => dinoLoss(globals.map(t2), student.map(t2), tf.tensor2d([center]), tt, ts));
      expect(got).toBeCloseTo(refDino(globals, student, center, tt, ts), 3);
    }
    const newCenter = tf.tidy(() => dinoCenter(tf.tensor2d([center]), globals.map(t2), 0.9).arraySync()[0]);
    const all = [...globals[0], ...globals[1]];
    expectAllClose(
      newCenter,
      center.map((c, k) => 0.9 * c + 0.1 * mean(column(all, k))),
      5,
    );
  });

  it('stopGradient passes values and blocks gradients', () => {
    tf.tidy(() => {
      const x = tf.tensor1d([1, 2, 3]);
      const grad = tf.grad((input: tf.Tensor) =>
        tf.sum(tf.add(tf.mul(stopGradient(input), input), stopGradient(input))),
      );
      // d/dx sum(sg(x) * x + sg(x)) = sg(x) = x
      expect(Array.from(grad(x).dataSync())).toEqual([1, 2, 3]);
      expect(Array.from(stopGradient(x).dataSync())).toEqual([1, 2, 3]);
    });
  });
});
