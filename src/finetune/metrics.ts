/**
 * Classification metrics on the host (plain arrays): confusion matrix,
 * per-class precision / recall / F1, macro-F1, and calibration (expected
 * calibration error, Guo et al., 2017: "ECE = sum_m |B_m|/n |acc(B_m) - conf(B_m)|").
 */
import { invalidOption } from '../util/errors.js';

/** Row-major K x K counts: confusion[t * K + p] = #{true t, predicted p}. */
export function confusionMatrix(
  labels: ArrayLike<number>,
  predicted: ArrayLike<number>,
  numClasses: number,
): Int32Array {
  if (labels.length !== predicted.length) {
    throw invalidOption('predicted', `${labels.length} predictions (one per label)`, predicted.length);
  }
  const m = new Int32Array(numClasses * numClasses);
  for (let i = 0; i < labels.length; i++) {
    const t = labels[i];
    const p = predicted[i];
    if (t < 0) continue; // unlabeled
    if (t >= numClasses || p < 0 || p >= numClasses) {
      throw invalidOption(`labels/predicted[${i}]`, `classes in 0..${numClasses - 1}`, [t, p]);
    }
    m[t * numClasses + p]++;
  }
  return m;
}

export interface ClassMetrics {
  precision: number;
  recall: number;
  f1: number;
  /** Number of true samples of the class. */
  support: number;
  /** Number of samples predicted as the class. */
  predicted: number;
}

export interface ClassificationMetrics {
  accuracy: number;
  /** Unweighted mean of per-class F1 over classes with support > 0 or predictions > 0. */
  macroF1: number;
  macroPrecision: number;
  macroRecall: number;
  /** Mean of per-class recall over classes with support (balanced accuracy). */
  balancedAccuracy: number;
  perClass: ClassMetrics[];
  total: number;
}

/**
 * Metrics from a confusion matrix. Precision of a class never predicted is 0,
 * recall of a class with no samples is 0 (scikit-learn's zero_division=0); classes
 * with neither samples nor predictions are left out of the macro averages.
 */
export function classificationMetrics(confusion: ArrayLike<number>, numClasses: number): ClassificationMetrics {
  if (confusion.length !== numClasses * numClasses) {
    throw invalidOption('confusion', `${numClasses * numClasses} counts`, confusion.length);
  }
  const perClass: ClassMetrics[] = [];
  let total = 0;
  let correct = 0;
  for (let k = 0; k < numClasses; k++) {
    let support = 0;
    let predicted = 0;
    for (let j = 0; j < numClasses; j++) {
      support += confusion[k * numClasses + j];
      predicted += confusion[j * numClasses + k];
    }
    const tp = confusion[k * numClasses + k];
    total += support;
    correct += tp;
    const precision = predicted > 0 ? tp / predicted : 0;
    const recall = support > 0 ? tp / support : 0;
    const f1 = precision + recall > 0 ? (2 * precision * recall) / (precision + recall) : 0;
    perClass.push({ precision, recall, f1, support, predicted });
  }
  const active = perClass.filter((c) => c.support > 0 || c.predicted > 0);
  const withSupport = perClass.filter((c) => c.support > 0);
  const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);
  return {
    accuracy: total > 0 ? correct / total : 0,
    macroF1: mean(active.map((c) => c.f1)),
    macroPrecision: mean(active.map((c) => c.precision)),
    macroRecall: mean(active.map((c) => c.recall)),
    balancedAccuracy: mean(withSupport.map((c) => c.recall)),
    perClass,
    total,
  };
}

export interface CalibrationBin {
  /** Bin covers confidences in (lower, upper]; the first bin also includes 0. */
  lower: number;
  upper: number;
  count: number;
  /** Fraction correct in the bin (0 when empty). */
  accuracy: number;
  /** Mean confidence in the bin (0 when empty). */
  confidence: number;
}

export interface Calibration {
  /** Expected calibration error: sum over bins of |B|/n * |accuracy - confidence|. */
  ece: number;
  /** Maximum calibration error over non-empty bins. */
  mce: number;
  bins: CalibrationBin[];
}

/**
 * Expected calibration error with `numBins` equal-width bins (default 15, as in
 * Guo et al.). confidences[i] = max predicted probability, correct[i] = whether
 * the argmax was right.
 */
export function calibration(
  confidences: ArrayLike<number>,
  correct: ArrayLike<boolean | number>,
  numBins = 15,
): Calibration {
  if (confidences.length !== correct.length) {
    throw invalidOption('correct', `${confidences.length} values`, correct.length);
  }
  const count = new Float64Array(numBins);
  const hits = new Float64Array(numBins);
  const confSum = new Float64Array(numBins);
  for (let i = 0; i < confidences.length; i++) {
    const c = confidences[i];
    if (!(c >= 0 && c <= 1)) throw invalidOption(`confidences[${i}]`, 'a probability in [0, 1]', c);
    // Bin m holds (m/M, (m+1)/M]; ceil(c*M)-1, with c = 0 in the first bin.
    const m = Math.min(numBins - 1, Math.max(0, Math.ceil(c * numBins) - 1));
    count[m]++;
    confSum[m] += c;
    if (correct[i]) hits[m]++;
  }
  const n = confidences.length;
  let ece = 0;
  let mce = 0;
  const bins: CalibrationBin[] = [];
  for (let m = 0; m < numBins; m++) {
    const accuracy = count[m] > 0 ? hits[m] / count[m] : 0;
    const confidence = count[m] > 0 ? confSum[m] / count[m] : 0;
    if (count[m] > 0) {
      const gap = Math.abs(accuracy - confidence);
      ece += (count[m] / n) * gap;
      mce = Math.max(mce, gap);
    }
    bins.push({ lower: m / numBins, upper: (m + 1) / numBins, count: count[m], accuracy, confidence });
  }
  return { ece, mce, bins };
}

/** Argmax and max of each row of a row-major [N, K] probability matrix. */
export function argmaxRows(
  probabilities: Float32Array,
  numClasses: number,
): { predicted: Int32Array; confidence: Float32Array } {
  const n = probabilities.length / numClasses;
  const predicted = new Int32Array(n);
  const confidence = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    let bestValue = -Infinity;
    for (let k = 0; k < numClasses; k++) {
      const v = probabilities[i * numClasses + k];
      if (v > bestValue) {
        bestValue = v;
        best = k;
      }
    }
    predicted[i] = best;
    confidence[i] = bestValue;
  }
  return { predicted, confidence };
}

/**
 * Share of the rows of probabilities [N * K] whose argmax equals their label; rows labeled < 0
 * (unlabeled) are left out. NaN when no row has a label.
 */
export function argmaxAccuracy(probabilities: Float32Array, labels: ArrayLike<number>, numClasses: number): number {
  const { predicted } = argmaxRows(probabilities, numClasses);
  let right = 0;
  let labeled = 0;
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] < 0) continue;
    labeled++;
    if (predicted[i] === labels[i]) right++;
  }
  return labeled > 0 ? right / labeled : Number.NaN;
}
