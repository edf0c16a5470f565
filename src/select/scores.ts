/**
 * Uncertainty of a classifier's predicted distribution, one score per image;
 * higher means less certain.
 *
 * - `margin`: 1 - (p1 - p2), one minus the gap between the two most probable classes
 *   (Scheffer et al. 2001);
 * - `entropy`: -sum p log p, in nats;
 * - `least-confidence`: 1 - p1.
 */
import { InputError } from '../util/errors.js';

export const UNCERTAINTY_MEASURES = ['margin', 'entropy', 'least-confidence'] as const;
export type UncertaintyMeasure = (typeof UNCERTAINTY_MEASURES)[number];

/** Row-major class probabilities: `count` rows of `numClasses`. */
export interface ProbabilityMatrix {
  values: Float32Array;
  count: number;
  numClasses: number;
}

export function checkProbabilities(p: ProbabilityMatrix): void {
  if (p.numClasses < 2) throw new InputError('probabilities', `need at least 2 classes, received ${p.numClasses}`);
  if (p.values.length !== p.count * p.numClasses) {
    throw new InputError(
      'probabilities',
      `expected ${p.count} x ${p.numClasses} values but received ${p.values.length}`,
    );
  }
  for (let i = 0; i < p.count; i++) {
    let sum = 0;
    for (let c = 0; c < p.numClasses; c++) {
      const v = p.values[i * p.numClasses + c];
      if (!Number.isFinite(v) || v < 0) throw new InputError('probabilities', `row ${i} holds ${v}`);
      sum += v;
    }
    if (Math.abs(sum - 1) > 1e-3) throw new InputError('probabilities', `row ${i} sums to ${sum}, not 1`);
  }
}

/** [count] uncertainty scores (higher = less certain). */
export function uncertaintyScores(p: ProbabilityMatrix, measure: UncertaintyMeasure): Float32Array {
  const { count, numClasses, values } = p;
  const scores = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    const row = i * numClasses;
    let first = -1;
    let second = -1;
    let entropy = 0;
    for (let c = 0; c < numClasses; c++) {
      const v = values[row + c];
      if (v > first) {
        second = first;
        first = v;
      } else if (v > second) {
        second = v;
      }
      if (v > 0) entropy -= v * Math.log(v);
    }
    scores[i] = measure === 'margin' ? 1 - (first - second) : measure === 'entropy' ? entropy : 1 - first;
  }
  return scores;
}

/** [count] predicted class (argmax) and its probability. */
export function predictions(p: ProbabilityMatrix): { label: Int32Array; probability: Float32Array } {
  const label = new Int32Array(p.count);
  const probability = new Float32Array(p.count);
  for (let i = 0; i < p.count; i++) {
    let best = 0;
    for (let c = 1; c < p.numClasses; c++) {
      if (p.values[i * p.numClasses + c] > p.values[i * p.numClasses + best]) best = c;
    }
    label[i] = best;
    probability[i] = p.values[i * p.numClasses + best];
  }
  return { label, probability };
}
