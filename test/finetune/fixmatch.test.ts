import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initEngine } from '../../src/engine/backend.js';
import { FixMatchMeter, fixMatchTerms, unlabeledWeight, validateFixMatch } from '../../src/finetune/fixmatch.js';

function logSoftmaxRow(z: number[]): number[] {
  const m = Math.max(...z);
  const lse = m + Math.log(z.reduce((a, v) => a + Math.exp(v - m), 0));
  return z.map((v) => v - lse);
}

describe('FixMatch', () => {
  beforeAll(() => {
    expect(initEngine().backend).toBe('tensorflow');
  });

  it('masks by the weak view confidence and takes CE on the strong view', () => {
    // Weak-view max probabilities: [10,0,0] -> 0.99991; [1,0,0] -> e/(e+2) = 0.5761; [0,5,0] -> e^5/(e^5+2) = 0.98670.
    const weak = [
      [10, 0, 0],
      [1, 0, 0],
      [0, 5, 0],
    ];
    const strong = [
      [0.5, 0.2, -1],
      [3, 0, 0],
      [1, 1, 1],
    ];
    const out = tf.tidy(() => {
      const t = fixMatchTerms(tf.tensor2d(weak), tf.tensor2d(strong), 0.95);
      return {
        loss: t.loss.dataSync()[0],
        mask: Array.from(t.mask.dataSync()),
        pseudo: Array.from(t.pseudoLabels.dataSync()),
        conf: Array.from(t.confidence.dataSync()),
      };
    });
    expect(out.mask).toEqual([1, 0, 1]);
    expect(out.pseudo).toEqual([0, 0, 1]);
    expect(out.conf[1]).toBeCloseTo(Math.E / (Math.E + 2), 5);
    // Mean over all 3 unlabeled samples; the masked-out one contributes 0.
    const expected = (-logSoftmaxRow(strong[0])[0] - logSoftmaxRow(strong[2])[1]) / 3;
    expect(out.loss).toBeCloseTo(expected, 5); // (1.0398 + 1.0986) / 3
    // Threshold 0.5 lets all three through; 1.0 none.
    const all = tf.tidy(() => Array.from(fixMatchTerms(tf.tensor2d(weak), tf.tensor2d(strong), 0.5).mask.dataSync()));
    expect(all).toEqual([1, 1, 1]);
    const none = tf.tidy(() => fixMatchTerms(tf.tensor2d(weak), tf.tensor2d(strong), 1).loss.dataSync()[0]);
    expect(none).toBe(0);
  });

  it('no gradient flows through the pseudo-labels', () => {
    const weak = tf.variable(
      tf.tensor2d([
        [4, 0],
        [0, 4],
      ]),
    );
    const strong = tf.variable(
      tf.tensor2d([
        [0, 1],
        [1, 0],
      ]),
    );
    const before = tf.memory().numTensors;
    const [gw, gs] = tf.tidy(() => {
      const { grads } = tf.variableGrads(() => fixMatchTerms(weak, strong, 0.9).loss, [weak, strong]);
      return [grads[weak.name]?.abs().sum().dataSync()[0] ?? 0, grads[strong.name].abs().sum().dataSync()[0]];
    });
    expect(gw).toBe(0);
    expect(gs).toBeGreaterThan(0);
    expect(tf.memory().numTensors).toBe(before);
    weak.dispose();
    strong.dispose();
  });

  it('warm-up ramp, meter and option checks', () => {
    const o = validateFixMatch({ threshold: 0.9, warmupEpochs: 4, weight: 2 });
    expect(unlabeledWeight(o, 0)).toBe(0);
    expect(unlabeledWeight(o, 1)).toBeCloseTo(0.5, 10);
    expect(unlabeledWeight(o, 10)).toBe(2);
    expect(unlabeledWeight({ ...o, warmupEpochs: 0 }, 0)).toBe(2);
    const meter = new FixMatchMeter();
    meter.add([1, 0, 1, 1], [2, 1, 0, 1], [2, 1, 1, 1]);
    expect(meter.stats()).toEqual({ maskRate: 0.75, pseudoLabelAccuracy: 2 / 3, seen: 4 });
    expect(() => validateFixMatch({ threshold: 2 })).toThrow(
      'Expected a number between 0 and 1 for recipe.fixmatch.threshold but received 2 (number)',
    );
    expect(() => validateFixMatch({ treshold: 0.9 })).toThrow(/for recipe\.fixmatch\.treshold/);
  });
});
