/**
 * Distribution alignment (ReMixMatch) and FreeMatch's self-adaptive thresholds
 * against a plain loop of the papers' formulas, step by step; the option checks.
 */
import { describe, expect, it } from 'vitest';
import { validateFixMatch } from '../../src/finetune/fixmatch.js';
import {
  classThresholds,
  initialPseudoLabelState,
  labeledClassPrior,
  type PseudoLabelOptions,
  type PseudoLabelState,
  selectPseudoLabels,
} from '../../src/finetune/pseudo-labels.js';
import { finetuneDefaults, resolveFinetuneRecipe } from '../../src/recipes/finetune-recipe.js';
import { createRng } from '../../src/util/rng.js';

/** Softmax rows of random logits (scaled so some rows are confident). */
function randomProbs(rows: number, k: number, seed: number, scale: number): number[][] {
  const rng = createRng(seed);
  return Array.from({ length: rows }, () => {
    const z = Array.from({ length: k }, () => scale * (rng.next() * 2 - 1));
    const e = z.map((v) => Math.exp(v));
    const sum = e.reduce((a, b) => a + b, 0);
    return e.map((v) => v / sum);
  });
}

/** The papers' formulas, one loop each, on nested arrays. */
function referenceStep(
  q0: number[][],
  state: { mean: number[]; tau: number; pTilde: number[] },
  prior: number[],
  o: PseudoLabelOptions,
) {
  const k = prior.length;
  const lambda = o.emaMomentum;
  let q = q0.map((row) => row.slice());
  const mean = state.mean.slice();
  if (o.distributionAlignment) {
    // p~(y) <- lambda p~(y) + (1 - lambda) mean_b q_b ; q~ = Normalize(q p(y) / p~(y))
    for (let c = 0; c < k; c++) {
      let m = 0;
      for (const row of q) m += row[c] / q.length;
      mean[c] = lambda * mean[c] + (1 - lambda) * m;
    }
    q = q.map((row) => {
      const scaled = row.map((v, c) => (v * prior[c]) / mean[c]);
      const z = scaled.reduce((a, b) => a + b, 0);
      return scaled.map((v) => v / z);
    });
  }
  let tau = state.tau;
  const pTilde = state.pTilde.slice();
  let thresholds = new Array<number>(k).fill(o.threshold);
  if (o.thresholdSchedule === 'self-adaptive') {
    // tau_t = lambda tau_{t-1} + (1 - lambda) 1/(muB) sum max q_b ; p~_t(c) likewise with q_b(c)
    let meanMax = 0;
    for (const row of q) meanMax += Math.max(...row) / q.length;
    tau = lambda * tau + (1 - lambda) * meanMax;
    for (let c = 0; c < k; c++) {
      let m = 0;
      for (const row of q) m += row[c] / q.length;
      pTilde[c] = lambda * pTilde[c] + (1 - lambda) * m;
    }
    // tau_t(c) = MaxNorm(p~_t)(c) tau_t
    const top = Math.max(...pTilde);
    thresholds = pTilde.map((p) => (p / top) * tau);
  }
  const labels = q.map((row) => row.indexOf(Math.max(...row)));
  const mask = q.map((row, b) => (Math.max(...row) >= thresholds[labels[b]] ? 1 : 0));
  return { state: { mean, tau, pTilde }, labels, mask, thresholds };
}

const OPTIONS: PseudoLabelOptions = {
  threshold: 0.7,
  thresholdSchedule: 'self-adaptive',
  distributionAlignment: true,
  emaMomentum: 0.9,
};

describe('pseudo-labels: distribution alignment and self-adaptive thresholds', () => {
  for (const options of [
    OPTIONS,
    { ...OPTIONS, distributionAlignment: false },
    { ...OPTIONS, thresholdSchedule: 'fixed' as const },
    { ...OPTIONS, emaMomentum: 0.999 },
  ]) {
    it(`match a plain loop of the formulas over 12 steps (${options.thresholdSchedule}, alignment ${options.distributionAlignment}, momentum ${options.emaMomentum})`, () => {
      const k = 5;
      // An unbalanced labeled prior, so the alignment has something to do.
      const prior = labeledClassPrior([0, 0, 0, 1, 1, 2, 3, 4, 4, 4, -1], k);
      expect(prior).toEqual([0.3, 0.2, 0.1, 0.1, 0.3]);
      let state: PseudoLabelState = initialPseudoLabelState(k);
      let ref = { mean: new Array(k).fill(1 / k), tau: 1 / k, pTilde: new Array(k).fill(1 / k) };
      let kept = 0;
      for (let step = 0; step < 12; step++) {
        const q = randomProbs(16, k, step + 1, step < 4 ? 1 : 4);
        const got = selectPseudoLabels(q.flat(), k, state, prior, options);
        const want = referenceStep(q, ref, prior, options);
        expect(Array.from(got.labels)).toEqual(want.labels);
        expect(Array.from(got.mask)).toEqual(want.mask);
        got.thresholds.forEach((t, c) => {
          expect(t).toBeCloseTo(want.thresholds[c], 12);
        });
        if (options.distributionAlignment) {
          got.state.predictionMean.forEach((m, c) => {
            expect(m).toBeCloseTo(want.state.mean[c], 12);
          });
        } else expect(got.state.predictionMean).toEqual(state.predictionMean);
        expect(got.state.globalConfidence).toBeCloseTo(want.state.tau, 12);
        got.state.classConfidence.forEach((p, c) => {
          expect(p).toBeCloseTo(want.state.pTilde[c], 12);
        });
        expect(got.state.updates).toBe(step + 1);
        kept += want.mask.reduce((a, b) => a + b, 0);
        state = got.state;
        ref = want.state;
      }
      // The comparison is not vacuous: some pseudo-labels were kept and (except at momentum 0.999,
      // where the thresholds are still near their start 1/K) some rejected.
      expect(kept).toBeGreaterThan(0);
      if (options.emaMomentum < 0.99) expect(kept).toBeLessThan(12 * 16);
    });
  }

  it('start at 1/K and rise with confident predictions; the input state is not changed', () => {
    const k = 4;
    const state = initialPseudoLabelState(k);
    expect(classThresholds(state, OPTIONS)).toEqual([0.25, 0.25, 0.25, 0.25]);
    const confident = [0.97, 0.01, 0.01, 0.01, 0.01, 0.97, 0.01, 0.01];
    const next = selectPseudoLabels(confident, k, state, [0.25, 0.25, 0.25, 0.25], {
      ...OPTIONS,
      distributionAlignment: false,
    });
    // tau_1 = 0.9 x 0.25 + 0.1 x 0.97; class 0 and 1 hold the largest running mean.
    expect(next.state.globalConfidence).toBeCloseTo(0.9 * 0.25 + 0.1 * 0.97, 12);
    expect(next.thresholds[0]).toBeCloseTo(next.state.globalConfidence, 12);
    expect(next.thresholds[2]).toBeLessThan(next.thresholds[0]);
    expect(Array.from(next.mask)).toEqual([1, 1]);
    expect(state).toEqual(initialPseudoLabelState(k));
  });

  it('alignment with a prior equal to the running mean leaves the predictions unchanged', () => {
    const k = 3;
    const q = [0.6, 0.3, 0.1, 0.2, 0.5, 0.3];
    // Momentum 1 - tiny keeps the mean at its start; a prior equal to it cancels.
    const out = selectPseudoLabels(q, k, initialPseudoLabelState(k), [1 / 3, 1 / 3, 1 / 3], {
      ...OPTIONS,
      thresholdSchedule: 'fixed',
      threshold: 0.55,
      emaMomentum: 0.999999,
    });
    expect(out.confidence[0]).toBeCloseTo(0.6, 5);
    expect(out.confidence[1]).toBeCloseTo(0.5, 5);
    expect(Array.from(out.mask)).toEqual([1, 0]);
  });

  it('options: recipe keys with defaults, and clear errors', () => {
    const defaults = finetuneDefaults().fixmatch;
    expect(defaults.thresholdSchedule).toBe('fixed');
    expect(defaults.distributionAlignment).toBe(false);
    expect(defaults.emaMomentum).toBe(0.999);
    expect(() => resolveFinetuneRecipe({ fixmatch: { thresholdSchedule: 'flex' } })).toThrow(
      'recipe.fixmatch.thresholdSchedule: Expected one of "fixed", "self-adaptive" but received "flex" (string)',
    );
    expect(() => resolveFinetuneRecipe({ fixmatch: { emaMomentum: 1 } })).toThrow(
      /recipe\.fixmatch\.emaMomentum: Expected a number between 0 and 0\.999999 but received 1 \(number\)/,
    );
    expect(validateFixMatch({ thresholdSchedule: 'self-adaptive' }).thresholdSchedule).toBe('self-adaptive');
    expect(() => validateFixMatch({ thresholdSchedule: 'flex' })).toThrow(
      'Expected one of fixed, self-adaptive for recipe.fixmatch.thresholdSchedule but received "flex" (string)',
    );
    expect(() => validateFixMatch({ distributionAlignment: 'yes' })).toThrow(
      /for recipe\.fixmatch\.distributionAlignment/,
    );
  });
});
