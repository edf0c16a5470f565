import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initEngine } from '../../src/engine/backend.js';
import {
  classCounts,
  crossEntropyLoss,
  effectiveNumberWeights,
  focalLossSigmoid,
  focalLossSoftmax,
  inverseFrequencyWeights,
} from '../../src/finetune/losses.js';

// Plain-loop ports of the formulas, written from the papers, independent of the tensor code.
function softmaxRow(z: number[]): number[] {
  const m = Math.max(...z);
  const e = z.map((v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}
function refCrossEntropy(logits: number[][], labels: number[], eps = 0, weights?: number[]): number {
  let num = 0;
  let den = 0;
  logits.forEach((z, i) => {
    const p = softmaxRow(z);
    const k = z.length;
    let l = 0;
    for (let j = 0; j < k; j++) {
      const t = (j === labels[i] ? 1 - eps : 0) + eps / k;
      l -= t * Math.log(p[j]);
    }
    const w = weights ? weights[labels[i]] : 1;
    num += w * l;
    den += w;
  });
  return num / den;
}
function refFocalSoftmax(logits: number[][], labels: number[], gamma: number, alpha?: number[]): number {
  let s = 0;
  logits.forEach((z, i) => {
    const pt = softmaxRow(z)[labels[i]];
    s += -(alpha ? alpha[labels[i]] : 1) * (1 - pt) ** gamma * Math.log(pt);
  });
  return s / logits.length;
}
function refFocalSigmoid(logits: number[][], targets: number[][], gamma: number, alpha: number | number[]): number {
  let s = 0;
  let n = 0;
  for (let i = 0; i < logits.length; i++) {
    for (let k = 0; k < logits[i].length; k++) {
      const p = 1 / (1 + Math.exp(-logits[i][k]));
      const t = targets[i][k];
      const a = typeof alpha === 'number' ? alpha : alpha[k];
      const pt = t === 1 ? p : 1 - p;
      const at = t === 1 ? a : 1 - a;
      s += -at * (1 - pt) ** gamma * Math.log(pt);
      n++;
    }
  }
  return s / n;
}

function value(f: () => tf.Scalar): number {
  return tf.tidy(() => f().dataSync()[0]);
}

const logits = [
  [2, 0, 0],
  [0.5, -1, 3],
  [-2, 1, 0.3],
  [0, 0, 0],
  [4, 4.5, -3],
];
const labels = [0, 2, 0, 1, 1];

describe('losses', () => {
  beforeAll(() => {
    expect(initEngine().backend).toBe('tensorflow');
  });

  it('cross-entropy matches hand values', () => {
    // logits [2, 0, 0], y = 0: p0 = e^2 / (e^2 + 2) = 0.786986, CE = -log p0 = 0.239543.
    const ce = value(() => crossEntropyLoss(tf.tensor2d([[2, 0, 0]]), tf.tensor1d([0], 'int32')));
    expect(ce).toBeCloseTo(0.239543, 5);
    // eps = 0.3, K = 3: target [0.8, 0.1, 0.1]; log p1 = log p2 = -2.239543;
    // 0.8 * 0.239543 + 0.2 * 2.239543 = 0.639543.
    const smoothed = value(() =>
      crossEntropyLoss(tf.tensor2d([[2, 0, 0]]), tf.tensor1d([0], 'int32'), { labelSmoothing: 0.3 }),
    );
    expect(smoothed).toBeCloseTo(0.639543, 5);
  });

  it('cross-entropy with smoothing and class weights matches the plain loop', () => {
    for (const eps of [0, 0.1, 0.25]) {
      for (const weights of [undefined, [1, 3, 0.5]]) {
        const got = value(() =>
          crossEntropyLoss(tf.tensor2d(logits), tf.tensor1d(labels, 'int32'), {
            labelSmoothing: eps,
            classWeights: weights,
          }),
        );
        expect(got).toBeCloseTo(refCrossEntropy(logits, labels, eps, weights), 5);
      }
    }
  });

  it('softmax focal loss matches hand values and the plain loop', () => {
    // p0 = 0.786986, (1 - p0)^2 = 0.045375, * 0.239543 = 0.010869.
    const fl = value(() => focalLossSoftmax(tf.tensor2d([[2, 0, 0]]), tf.tensor1d([0], 'int32'), { gamma: 2 }));
    expect(fl).toBeCloseTo(0.010869, 5);
    for (const gamma of [0, 0.5, 2, 5]) {
      for (const alpha of [undefined, [0.25, 0.5, 1]]) {
        const got = value(() => focalLossSoftmax(tf.tensor2d(logits), tf.tensor1d(labels, 'int32'), { gamma, alpha }));
        expect(got).toBeCloseTo(refFocalSoftmax(logits, labels, gamma, alpha), 5);
      }
    }
    // gamma = 0 without alpha is plain cross-entropy.
    const ce = value(() => crossEntropyLoss(tf.tensor2d(logits), tf.tensor1d(labels, 'int32')));
    const fl0 = value(() => focalLossSoftmax(tf.tensor2d(logits), tf.tensor1d(labels, 'int32'), { gamma: 0 }));
    expect(fl0).toBeCloseTo(ce, 6);
  });

  it('sigmoid focal loss matches hand values and the plain loop', () => {
    // z = 0 -> p = 0.5. t = 1: 0.25 * 0.5^2 * log 2 = 0.043322; t = 0: 0.75 * 0.25 * log 2 = 0.129965.
    const pos = value(() => focalLossSigmoid(tf.tensor2d([[0]]), tf.tensor2d([[1]])));
    const neg = value(() => focalLossSigmoid(tf.tensor2d([[0]]), tf.tensor2d([[0]])));
    expect(pos).toBeCloseTo(0.043322, 5);
    expect(neg).toBeCloseTo(0.129965, 5);
    const targets = [
      [1, 0, 0],
      [0, 1, 1],
      [0, 0, 0],
      [1, 1, 1],
      [0, 1, 0],
    ];
    for (const gamma of [0, 1, 2]) {
      for (const alpha of [0.25, 0.5, [0.1, 0.5, 0.9]] as Array<number | number[]>) {
        const got = value(() => focalLossSigmoid(tf.tensor2d(logits), tf.tensor2d(targets), { gamma, alpha }));
        expect(got).toBeCloseTo(refFocalSigmoid(logits, targets, gamma, alpha), 5);
      }
    }
    // Stable for large logits (no NaN / Infinity).
    const big = value(() => focalLossSigmoid(tf.tensor2d([[200, -200]]), tf.tensor2d([[0, 1]])));
    expect(Number.isFinite(big)).toBe(true);
  });

  it('losses leak no tensors and give gradients', () => {
    const x = tf.variable(tf.tensor2d(logits));
    const y = tf.tensor1d(labels, 'int32');
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) {
      tf.tidy(() => {
        const { grads } = tf.variableGrads(() => focalLossSoftmax(x, y, { gamma: 2 }), [x]);
        expect(Number.isFinite(grads[x.name].sum().dataSync()[0])).toBe(true);
      });
    }
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
    y.dispose();
  });

  it('class weights: inverse frequency and effective number', () => {
    expect(classCounts([0, 0, 1, -1, 2, 0], 4)).toEqual([3, 1, 1, 0]);
    // N = 40, K = 2: 40 / (2 * 30) = 0.6667, 40 / (2 * 10) = 2.
    const inv = inverseFrequencyWeights([30, 10]);
    expect(inv[0]).toBeCloseTo(2 / 3, 10);
    expect(inv[1]).toBeCloseTo(2, 10);
    expect(inverseFrequencyWeights([5, 0])).toEqual([1, 0]);
    // beta = 0.5, n = [1, 2]: raw (0.5 / 0.5, 0.5 / 0.75) = (1, 0.6667); normalised to sum 2: (1.2, 0.8).
    const eff = effectiveNumberWeights([1, 2], 0.5);
    expect(eff[0]).toBeCloseTo(1.2, 10);
    expect(eff[1]).toBeCloseTo(0.8, 10);
    // beta = 0: equal weights; beta -> 1: proportional to inverse frequency.
    expect(effectiveNumberWeights([100, 10], 0)).toEqual([1, 1]);
    const near = effectiveNumberWeights([100, 10], 0.999999);
    expect(near[1] / near[0]).toBeCloseTo(10, 2);
  });

  it('rejects bad options with the standard message', () => {
    expect(() => crossEntropyLoss(tf.zeros([2, 3]), tf.tensor1d([0, 1], 'int32'), { labelSmoothing: 1.5 })).toThrow(
      'Expected a number in [0, 1) for labelSmoothing but received 1.5 (number)',
    );
    expect(() => focalLossSoftmax(tf.zeros([2, 3]), tf.tensor1d([0, 1], 'int32'), { alpha: [1, 2] })).toThrow(
      /Expected 3 values \(one per class\) for alpha/,
    );
    expect(() => effectiveNumberWeights([1], 1)).toThrow(
      'Expected a number in [0, 1) for beta but received 1 (number)',
    );
  });
});
