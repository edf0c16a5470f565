import { describe, expect, it } from 'vitest';
import { indicesByClass } from '../../src/data/datasets/split.js';
import {
  argmaxAccuracy,
  argmaxRows,
  calibration,
  classificationMetrics,
  confusionMatrix,
} from '../../src/finetune/metrics.js';
import { classBalancedIndices } from '../../src/finetune/sampler.js';
import { createRng } from '../../src/util/rng.js';

describe('metrics', () => {
  it('confusion matrix and per-class F1 agree with hand counts', () => {
    const labels = [0, 0, 1, 1, 2, 2, 2];
    const predicted = [0, 1, 1, 1, 2, 0, 2];
    const cm = confusionMatrix(labels, predicted, 3);
    // rows = true class: t0 [1, 1, 0], t1 [0, 2, 0], t2 [1, 0, 2]
    expect(Array.from(cm)).toEqual([1, 1, 0, 0, 2, 0, 1, 0, 2]);
    const m = classificationMetrics(cm, 3);
    expect(m.accuracy).toBeCloseTo(5 / 7, 10);
    // class 0: P = 1/2, R = 1/2, F1 = 0.5; class 1: P = 2/3, R = 1, F1 = 0.8; class 2: P = 1, R = 2/3, F1 = 0.8
    expect(m.perClass[0].precision).toBeCloseTo(0.5, 10);
    expect(m.perClass[1].precision).toBeCloseTo(2 / 3, 10);
    expect(m.perClass[1].recall).toBeCloseTo(1, 10);
    expect(m.perClass[2].recall).toBeCloseTo(2 / 3, 10);
    expect(m.perClass.map((c) => c.f1)).toEqual([0.5, 0.8, 0.8].map((v) => expect.closeTo(v, 10)));
    expect(m.macroF1).toBeCloseTo(0.7, 10);
    expect(m.perClass.map((c) => c.support)).toEqual([2, 2, 3]);
    expect(m.balancedAccuracy).toBeCloseTo((0.5 + 1 + 2 / 3) / 3, 10);
  });

  it('a class never predicted has precision 0 and counts in macro-F1', () => {
    const m = classificationMetrics(confusionMatrix([0, 1, 1], [0, 0, 0], 3), 3);
    expect(m.perClass[1]).toMatchObject({ precision: 0, recall: 0, f1: 0, support: 2 });
    // class 2 has no samples and no predictions: left out. class 0: P = 1/3, R = 1, F1 = 0.5.
    expect(m.macroF1).toBeCloseTo(0.25, 10);
  });

  it('ECE with 15 bins on a hand-made case', () => {
    // 0.95 -> bin 14 (acc 1/2, conf 0.95, gap 0.45); 0.55 -> bin 8 (acc 1, conf 0.55, gap 0.45).
    // ECE = 0.5 * 0.45 + 0.5 * 0.45 = 0.45.
    const c = calibration([0.95, 0.95, 0.55, 0.55], [1, 0, 1, 1]);
    expect(c.bins).toHaveLength(15);
    expect(c.ece).toBeCloseTo(0.45, 10);
    expect(c.bins[14]).toMatchObject({ count: 2, accuracy: 0.5 });
    expect(c.bins[8]).toMatchObject({ count: 2, accuracy: 1 });
    expect(c.bins[8].confidence).toBeCloseTo(0.55, 10);
    // Perfectly calibrated: confidence 0.75 with 3 of 4 right -> 0.
    expect(calibration([0.75, 0.75, 0.75, 0.75], [1, 1, 1, 0]).ece).toBeCloseTo(0, 10);
    // Edges: 1 goes to the last bin, 0 to the first.
    const e = calibration([1, 0], [true, false]);
    expect(e.bins[14].count).toBe(1);
    expect(e.bins[0].count).toBe(1);
    expect(() => calibration([1.5], [1])).toThrow(
      'Expected a probability in [0, 1] for confidences[0] but received 1.5',
    );
  });

  it('argmaxRows', () => {
    const r = argmaxRows(Float32Array.from([0.1, 0.7, 0.2, 0.5, 0.25, 0.25]), 3);
    expect(Array.from(r.predicted)).toEqual([1, 0]);
    expect(r.confidence[0]).toBeCloseTo(0.7, 6);
  });

  it('argmaxAccuracy leaves unlabeled rows out', () => {
    const probs = Float32Array.from([0.1, 0.7, 0.2, 0.5, 0.25, 0.25, 0.2, 0.2, 0.6, 0.3, 0.3, 0.4]);
    // Predicted 1, 0, 2, 2: the first and third right, the second wrong, the fourth unlabeled.
    expect(argmaxAccuracy(probs, [1, 2, 2, -1], 3)).toBeCloseTo(2 / 3, 12);
    expect(argmaxAccuracy(probs, [1, 0, 2, 2], 3)).toBe(1);
    expect(argmaxAccuracy(probs, [-1, -1, -1, -1], 3)).toBeNaN();
  });
});

describe('class-balanced sampler', () => {
  it('draws classes about equally from an imbalanced set, reproducibly', () => {
    const labels = new Int32Array(100);
    for (let i = 0; i < 100; i++) labels[i] = i < 90 ? 0 : i < 99 ? 1 : 2; // 90 / 9 / 1
    const draws = classBalancedIndices(labels, 3, createRng(5).derive('sampler'), 9000);
    const counts = [0, 0, 0];
    for (const i of draws) counts[labels[i]]++;
    for (const c of counts) expect(Math.abs(c / 9000 - 1 / 3)).toBeLessThan(0.03);
    // Within class 1 every member is used.
    const seen = new Set(Array.from(draws).filter((i) => labels[i] === 1));
    expect(seen.size).toBe(9);
    expect(Array.from(classBalancedIndices(labels, 3, createRng(5).derive('sampler'), 50))).toEqual(
      Array.from(draws.slice(0, 50)),
    );
    expect(indicesByClass([1, -1, 1, 0], 2).map((a) => Array.from(a))).toEqual([[3], [0, 2]]);
  });
});
