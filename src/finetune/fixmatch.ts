/**
 * FixMatch (Sohn et al., 2020, "FixMatch: Simplifying Semi-Supervised Learning
 * with Consistency and Confidence"): "we produce an artificial label for each
 * unlabeled sample by applying the model to a weakly-augmented version; if the
 * model's highest predicted class probability is above a threshold, the one-hot
 * pseudo-label is then used as the target for a strongly-augmented version".
 *
 * Unsupervised loss: `l_u = 1/(mu B) sum_b 1[max q_b >= tau] H(argmax q_b, p(y | strong(u_b)))`,
 * with q_b the (gradient-stopped) prediction on the weak view; total loss
 * `l_s + lambda_u l_u`.
 */
import * as tf from '@tensorflow/tfjs';
import { invalidOption } from '../util/errors.js';
import { type PseudoLabelOptions, THRESHOLD_SCHEDULES } from './pseudo-labels.js';

/**
 * With `distributionAlignment` or `thresholdSchedule: self-adaptive`, the pseudo-labels come from
 * `selectPseudoLabels` (pseudo-labels.ts: ReMixMatch's alignment, FreeMatch's thresholds) and the
 * loss from `pseudoLabelLoss`; with neither, `fixMatchTerms` (tau fixed) does both.
 */
export interface FixMatchOptions extends PseudoLabelOptions {
  /** Confidence threshold tau on the weak view's max probability. Paper: 0.95. */
  threshold: number;
  /** Unlabeled images per labeled image in a batch (mu). Paper: 7. */
  ratio: number;
  /** Weight lambda_u of the unlabeled loss. Paper: 1. */
  weight: number;
  /** Epochs over which lambda_u ramps linearly from 0 to `weight` (0 = no ramp). */
  warmupEpochs: number;
}

export const FIXMATCH_DEFAULTS: FixMatchOptions = {
  threshold: 0.95,
  ratio: 3,
  weight: 1,
  warmupEpochs: 1,
  thresholdSchedule: 'fixed',
  distributionAlignment: false,
  emaMomentum: 0.999,
};

export interface FixMatchTerms {
  /** Scalar unsupervised loss (mean over all unlabeled samples, masked ones count as 0). */
  loss: tf.Scalar;
  /** [U] 1 where the weak view was confident enough, else 0. */
  mask: tf.Tensor1D;
  /** [U] argmax of the weak view's prediction. */
  pseudoLabels: tf.Tensor1D;
  /** [U] max probability of the weak view's prediction. */
  confidence: tf.Tensor1D;
}

/**
 * The FixMatch unlabeled term for weak-view logits [U, K] and strong-view
 * logits [U, K]. The weak logits are treated as constants (no gradient flows
 * through the pseudo-labels). Call inside tf.tidy.
 */
export function fixMatchTerms(weakLogits: tf.Tensor2D, strongLogits: tf.Tensor2D, threshold: number): FixMatchTerms {
  if (!(threshold >= 0 && threshold <= 1)) throw invalidOption('fixmatch.threshold', 'a number in [0, 1]', threshold);
  return tf.tidy(() => {
    // Only argmax and a comparison of the weak probabilities reach the loss: neither
    // has a gradient, so the pseudo-labels act as constants (tfjs has no stopGradient).
    const probs = tf.softmax(weakLogits); // [U, K]
    const confidence = tf.max(probs, 1) as tf.Tensor1D; // [U]
    const pseudoLabels = tf.argMax(probs, 1) as tf.Tensor1D; // [U] int32
    const mask = tf.cast(tf.greaterEqual(confidence, threshold), 'float32') as tf.Tensor1D;
    const loss = pseudoLabelLoss(strongLogits, pseudoLabels, mask);
    return { loss, mask, pseudoLabels, confidence };
  });
}

/**
 * `1/U sum_b mask_b H(pseudoLabels_b, softmax(strongLogits_b))` for strong-view logits [U, K],
 * pseudo-labels [U] (int32) and a mask [U]; masked-out images count 0. Call inside tf.tidy.
 */
export function pseudoLabelLoss(strongLogits: tf.Tensor2D, pseudoLabels: tf.Tensor1D, mask: tf.Tensor1D): tf.Scalar {
  return tf.tidy(() => {
    const numClasses = strongLogits.shape[1];
    const logProbs = tf.logSoftmax(strongLogits); // [U, K]
    const perSample = tf.neg(tf.sum(tf.mul(tf.oneHot(pseudoLabels, numClasses).toFloat(), logProbs), 1)); // [U]
    return tf.mean(tf.mul(perSample, mask)) as tf.Scalar;
  });
}

/** lambda_u at a (fractional) epoch: linear ramp from 0 over `warmupEpochs`, then `weight`. */
export function unlabeledWeight(options: FixMatchOptions, epoch: number): number {
  if (options.warmupEpochs <= 0) return options.weight;
  return options.weight * Math.min(1, Math.max(0, epoch / options.warmupEpochs));
}

/** Checks FixMatch options merged over defaults; errors name `<prefix>.<key>`. */
export function validateFixMatch(value: unknown, prefix = 'recipe.fixmatch'): FixMatchOptions {
  if (value === undefined || value === null) return { ...FIXMATCH_DEFAULTS };
  if (typeof value !== 'object' || Array.isArray(value)) throw invalidOption(prefix, 'an object', value);
  const v = value as Record<string, unknown>;
  for (const key of Object.keys(v)) {
    if (!(key in FIXMATCH_DEFAULTS)) {
      throw invalidOption(`${prefix}.${key}`, `one of the keys ${Object.keys(FIXMATCH_DEFAULTS).join(', ')}`, key);
    }
  }
  const out = { ...FIXMATCH_DEFAULTS, ...v } as FixMatchOptions;
  const num = (key: keyof FixMatchOptions, min: number, max: number) => {
    const x = out[key];
    if (typeof x !== 'number' || !Number.isFinite(x) || x < min || x > max) {
      throw invalidOption(`${prefix}.${key}`, `a number between ${min} and ${max}`, x);
    }
  };
  num('threshold', 0, 1);
  num('ratio', 1, 64);
  num('weight', 0, 100);
  num('warmupEpochs', 0, 10_000);
  num('emaMomentum', 0, 0.999999);
  if (!(THRESHOLD_SCHEDULES as readonly unknown[]).includes(out.thresholdSchedule)) {
    throw invalidOption(
      `${prefix}.thresholdSchedule`,
      `one of ${THRESHOLD_SCHEDULES.join(', ')}`,
      out.thresholdSchedule,
    );
  }
  if (typeof out.distributionAlignment !== 'boolean')
    throw invalidOption(`${prefix}.distributionAlignment`, 'a boolean', out.distributionAlignment);
  if (!Number.isInteger(out.ratio)) throw invalidOption(`${prefix}.ratio`, 'an integer between 1 and 64', out.ratio);
  return out;
}

/** Summary the training loop accumulates over an epoch (host numbers). */
export interface FixMatchStats {
  /** Fraction of unlabeled samples whose pseudo-label passed the threshold. */
  maskRate: number;
  /** Accuracy of the pseudo-labels that passed, when the unlabeled set has hidden labels. */
  pseudoLabelAccuracy?: number;
  /** Unlabeled samples seen. */
  seen: number;
}

/** Accumulates mask rate and pseudo-label accuracy from per-batch host arrays. */
export class FixMatchMeter {
  private seen = 0;
  private passed = 0;
  private checked = 0;
  private right = 0;

  add(mask: ArrayLike<number>, pseudoLabels: ArrayLike<number>, hiddenLabels?: ArrayLike<number>): void {
    for (let i = 0; i < mask.length; i++) {
      this.seen++;
      if (mask[i] <= 0) continue;
      this.passed++;
      const truth = hiddenLabels?.[i];
      if (truth !== undefined && truth >= 0) {
        this.checked++;
        if (truth === pseudoLabels[i]) this.right++;
      }
    }
  }

  stats(): FixMatchStats {
    return {
      maskRate: this.seen > 0 ? this.passed / this.seen : 0,
      pseudoLabelAccuracy: this.checked > 0 ? this.right / this.checked : undefined,
      seen: this.seen,
    };
  }
}
