/**
 * Pseudo-labels of FixMatch's weak view with distribution alignment and a
 * self-adaptive confidence threshold, as pure host functions over running
 * statistics (the state a checkpoint saves).
 *
 * - **Distribution alignment** (Berthelot et al., 2020, "ReMixMatch: Semi-Supervised
 *   Learning with Distribution Alignment and Augmentation Anchoring"): "we scale q by
 *   the ratio p(y) / p~(y) and then renormalize the result to form a valid probability
 *   distribution: q~ = Normalize(q x p(y) / p~(y))", with p(y) the class distribution of
 *   the labeled data and p~(y) a running average of the model's predictions on
 *   unlabeled data (here an exponential moving average, updated before the scaling).
 *   p(y) is the labeled set's class frequencies: the value a running average of the
 *   labeled batches' histograms converges to, exact from the first step.
 * - **Self-adaptive thresholds** (Wang et al., 2023, "FreeMatch: Self-adaptive
 *   Thresholding for Semi-supervised Learning"): a global threshold that is the EMA
 *   of the mean max confidence, tau_t = lambda tau_{t-1} + (1 - lambda) mean_b max(q_b)
 *   (tau_0 = 1/K), modulated per class by the EMA of the mean class probabilities
 *   p~_t = lambda p~_{t-1} + (1 - lambda) mean_b q_b (p~_0 = 1/K):
 *   tau_t(c) = MaxNorm(p~_t)(c) tau_t = p~_t(c) / max_c' p~_t(c') tau_t.
 *   An unlabeled image keeps its pseudo-label argmax(q_b) when max(q_b) >= tau_t(argmax q_b).
 *   The statistics are updated with the current batch before its mask is computed.
 *   (FreeMatch's self-adaptive fairness loss is not implemented.)
 *
 * Order of one step: q = softmax(weak logits); with alignment, update p~(y) with q,
 * then q <- Normalize(q p(y) / p~(y)); with the self-adaptive schedule, update
 * tau_t and p~_t with q; mask and pseudo-labels from q.
 */
import { invalidOption } from '../util/errors.js';

export const THRESHOLD_SCHEDULES = ['fixed', 'self-adaptive'] as const;
export type ThresholdSchedule = (typeof THRESHOLD_SCHEDULES)[number];

export interface PseudoLabelOptions {
  /** Fixed confidence threshold tau (`thresholdSchedule: fixed`). */
  threshold: number;
  /** `fixed`: tau for every class; `self-adaptive`: FreeMatch's class-wise thresholds. */
  thresholdSchedule: ThresholdSchedule;
  /** Scale the weak-view predictions by p(y) / p~(y) and renormalise (ReMixMatch). */
  distributionAlignment: boolean;
  /** Momentum lambda of every running statistic (FreeMatch: 0.999). */
  emaMomentum: number;
}

/** Running statistics across steps (all [K] arrays are plain numbers: JSON keeps them exactly). */
export interface PseudoLabelState {
  /** Steps that updated the statistics. */
  updates: number;
  /** p~(y): running mean of the model's (unaligned) predictions on unlabeled images, for alignment. [K] */
  predictionMean: number[];
  /** tau_t: running mean of the max confidence. */
  globalConfidence: number;
  /** p~_t: running mean of the class probabilities (after alignment). [K] */
  classConfidence: number[];
}

export function initialPseudoLabelState(numClasses: number): PseudoLabelState {
  const uniform = new Array<number>(numClasses).fill(1 / numClasses);
  return { updates: 0, predictionMean: uniform.slice(), globalConfidence: 1 / numClasses, classConfidence: uniform };
}

/** Whether the options need the host-side path (running statistics) rather than a fixed threshold alone. */
export function usesRunningStatistics(options: PseudoLabelOptions): boolean {
  return options.distributionAlignment === true || options.thresholdSchedule === 'self-adaptive';
}

/** Class frequencies of labels (entries < 0 are unlabeled and skipped); [K], sums to 1. */
export function labeledClassPrior(labels: ArrayLike<number>, numClasses: number): number[] {
  const counts = new Array<number>(numClasses).fill(0);
  let total = 0;
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] >= 0) {
      counts[labels[i]]++;
      total++;
    }
  }
  if (total === 0) throw invalidOption('labels', 'at least one labeled image', total);
  return counts.map((c) => c / total);
}

/** The per-class thresholds tau_t(c) of a state, or `threshold` for every class when fixed. [K] */
export function classThresholds(state: PseudoLabelState, options: PseudoLabelOptions): number[] {
  if (options.thresholdSchedule !== 'self-adaptive') return state.classConfidence.map(() => options.threshold);
  const max = Math.max(...state.classConfidence);
  return state.classConfidence.map((p) => (p / max) * state.globalConfidence);
}

export interface PseudoLabelSelection {
  /** The statistics after this batch. */
  state: PseudoLabelState;
  /** [U] 1 where the pseudo-label is kept. */
  mask: Float32Array;
  /** [U] argmax of the (aligned) weak-view prediction. */
  labels: Int32Array;
  /** [U] its (aligned) probability. */
  confidence: Float32Array;
  /** [K] the thresholds the mask used. */
  thresholds: number[];
}

/**
 * Pseudo-labels of one batch from weak-view probabilities `probs` ([U * K],
 * row-major softmax outputs), the running `state` and the labeled prior `prior` [K].
 * Pure: returns the next state.
 */
export function selectPseudoLabels(
  probs: ArrayLike<number>,
  numClasses: number,
  state: PseudoLabelState,
  prior: number[],
  options: PseudoLabelOptions,
): PseudoLabelSelection {
  const k = numClasses;
  const u = probs.length / k;
  if (!Number.isInteger(u)) throw invalidOption('probs', `a length that is a multiple of ${k}`, probs.length);
  if (prior.length !== k || state.classConfidence.length !== k || state.predictionMean.length !== k) {
    throw invalidOption('state', `class statistics of length ${k}`, prior.length);
  }
  const m = options.emaMomentum;
  const q = Float64Array.from(probs);
  const next: PseudoLabelState = {
    updates: state.updates + (u > 0 ? 1 : 0),
    predictionMean: state.predictionMean.slice(),
    globalConfidence: state.globalConfidence,
    classConfidence: state.classConfidence.slice(),
  };
  if (u > 0 && options.distributionAlignment) {
    const batchMean = columnMeans(q, u, k);
    next.predictionMean = next.predictionMean.map((p, c) => m * p + (1 - m) * batchMean[c]);
    for (let b = 0; b < u; b++) {
      let sum = 0;
      for (let c = 0; c < k; c++) {
        q[b * k + c] *= prior[c] / next.predictionMean[c];
        sum += q[b * k + c];
      }
      for (let c = 0; c < k; c++) q[b * k + c] = sum > 0 ? q[b * k + c] / sum : 1 / k;
    }
  }
  const labels = new Int32Array(u);
  const confidence = new Float32Array(u);
  const maxima = new Float64Array(u);
  for (let b = 0; b < u; b++) {
    let best = 0;
    for (let c = 1; c < k; c++) if (q[b * k + c] > q[b * k + best]) best = c;
    labels[b] = best;
    maxima[b] = q[b * k + best];
    confidence[b] = maxima[b];
  }
  if (u > 0 && options.thresholdSchedule === 'self-adaptive') {
    let meanMax = 0;
    for (let b = 0; b < u; b++) meanMax += maxima[b];
    meanMax /= u;
    next.globalConfidence = m * next.globalConfidence + (1 - m) * meanMax;
    const batchMean = columnMeans(q, u, k);
    next.classConfidence = next.classConfidence.map((p, c) => m * p + (1 - m) * batchMean[c]);
  }
  const thresholds = classThresholds(next, options);
  const mask = new Float32Array(u);
  for (let b = 0; b < u; b++) mask[b] = maxima[b] >= thresholds[labels[b]] ? 1 : 0;
  return { state: next, mask, labels, confidence, thresholds };
}

function columnMeans(q: Float64Array, rows: number, k: number): number[] {
  const out = new Array<number>(k).fill(0);
  for (let b = 0; b < rows; b++) for (let c = 0; c < k; c++) out[c] += q[b * k + c];
  return out.map((s) => s / rows);
}

/** Checks a checkpoint's state against the class count; undefined when absent or malformed. */
export function restorePseudoLabelState(value: unknown, numClasses: number): PseudoLabelState | undefined {
  if (!value || typeof value !== 'object') return undefined;
  const v = value as PseudoLabelState;
  const ok =
    Number.isInteger(v.updates) &&
    typeof v.globalConfidence === 'number' &&
    Array.isArray(v.predictionMean) &&
    Array.isArray(v.classConfidence) &&
    v.predictionMean.length === numClasses &&
    v.classConfidence.length === numClasses;
  return ok
    ? {
        updates: v.updates,
        predictionMean: v.predictionMean.slice(),
        globalConfidence: v.globalConfidence,
        classConfidence: v.classConfidence.slice(),
      }
    : undefined;
}
