/**
 * Classification losses as pure functions of tensors. Call them inside tf.tidy.
 *
 * - Cross-entropy with label smoothing (Szegedy et al., 2016): the target is
 *   `(1 - eps) * onehot(y) + eps / K`.
 * - Focal loss (Lin et al., 2017, "Focal Loss for Dense Object Detection"):
 *   `FL(p_t) = -alpha_t (1 - p_t)^gamma log(p_t)`, softmax (multi-class) and
 *   sigmoid (multi-label) forms.
 *
 * Every loss returns the mean over the batch. With per-class weights the mean is
 * normalised by the sum of the sample weights (the PyTorch `weight=` convention),
 * so weights change the balance between classes, not the scale of the loss.
 */
import * as tf from '@tensorflow/tfjs';
import { invalidOption } from '../util/errors.js';

export interface CrossEntropyOptions {
  /** eps in [0, 1): weight moved from the true class to the uniform distribution. Default 0. */
  labelSmoothing?: number;
  /** Per-class weight w[k] (length K); a sample of class y is weighted w[y]. Default: all 1. */
  classWeights?: ArrayLike<number>;
}

export interface FocalOptions {
  /** Focusing parameter gamma >= 0; 0 gives (alpha-weighted) cross-entropy. Default 2. */
  gamma?: number;
  /**
   * Softmax form: per-class alpha (length K) weighting a sample of class y by alpha[y]; default all 1.
   * Sigmoid form: alpha for positives (1 - alpha for negatives), one number or one per class; default 0.25.
   */
  alpha?: number | ArrayLike<number>;
}

function checkLogits(logits: tf.Tensor, name: string): number {
  if (logits.rank !== 2) throw invalidOption(`${name} logits`, 'a rank-2 tensor [B, K]', logits.shape);
  return logits.shape[1] as number;
}

function perClass(values: ArrayLike<number>, numClasses: number, key: string): tf.Tensor1D {
  if (values.length !== numClasses) {
    throw invalidOption(key, `${numClasses} values (one per class)`, Array.from(values));
  }
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i]) || values[i] < 0) {
      throw invalidOption(`${key}[${i}]`, 'a finite number >= 0', values[i]);
    }
  }
  return tf.tensor1d(Array.from(values), 'float32');
}

/** Weighted mean of per-sample losses [B]; weights [B] or none. */
function weightedMean(perSample: tf.Tensor1D, weights?: tf.Tensor1D): tf.Scalar {
  if (!weights) return tf.mean(perSample) as tf.Scalar;
  // Guard the all-zero case (every sample of a zero-weight class): the loss is then 0.
  return tf.div(tf.sum(tf.mul(perSample, weights)), tf.maximum(tf.sum(weights), 1e-12)) as tf.Scalar;
}

/**
 * Softmax cross-entropy with optional label smoothing and class weights.
 * logits [B, K], labels int32 [B] -> scalar.
 * Per sample: `-sum_k t_k log softmax(z)_k` with `t = (1 - eps) onehot(y) + eps / K`.
 */
export function crossEntropyLoss(
  logits: tf.Tensor2D,
  labels: tf.Tensor1D,
  options: CrossEntropyOptions = {},
): tf.Scalar {
  const numClasses = checkLogits(logits, 'crossEntropyLoss');
  const eps = options.labelSmoothing ?? 0;
  if (!(eps >= 0 && eps < 1)) throw invalidOption('labelSmoothing', 'a number in [0, 1)', eps);
  return tf.tidy(() => {
    const logProbs = tf.logSoftmax(logits); // [B, K]
    const oneHot = tf.oneHot(tf.cast(labels, 'int32'), numClasses).toFloat(); // [B, K]
    const target = eps > 0 ? tf.add(tf.mul(oneHot, 1 - eps), eps / numClasses) : oneHot;
    const perSample = tf.neg(tf.sum(tf.mul(target, logProbs), 1)) as tf.Tensor1D; // [B]
    const weights = options.classWeights
      ? (tf.gather(perClass(options.classWeights, numClasses, 'classWeights'), tf.cast(labels, 'int32')) as tf.Tensor1D)
      : undefined;
    return weightedMean(perSample, weights);
  });
}

/**
 * Softmax focal loss for multi-class classification.
 * logits [B, K], labels int32 [B] -> scalar. Per sample `-alpha[y] (1 - p_y)^gamma log p_y`.
 * Reduction: mean over the batch (not normalised by alpha, so alpha scales the loss as in the paper).
 */
export function focalLossSoftmax(logits: tf.Tensor2D, labels: tf.Tensor1D, options: FocalOptions = {}): tf.Scalar {
  const numClasses = checkLogits(logits, 'focalLossSoftmax');
  const gamma = options.gamma ?? 2;
  if (!(gamma >= 0 && Number.isFinite(gamma))) throw invalidOption('gamma', 'a number >= 0', gamma);
  if (typeof options.alpha === 'number') {
    throw invalidOption('alpha', 'one number per class (softmax focal loss)', options.alpha);
  }
  return tf.tidy(() => {
    const labelsInt = tf.cast(labels, 'int32') as tf.Tensor1D;
    const logProbs = tf.logSoftmax(logits); // [B, K]
    const oneHot = tf.oneHot(labelsInt, numClasses).toFloat();
    const logPt = tf.sum(tf.mul(logProbs, oneHot), 1); // [B]
    const pt = tf.exp(logPt);
    // (1 - p_t)^gamma; clip at 0 so rounding above 1 cannot give NaN for fractional gamma.
    const modulator = gamma === 0 ? tf.onesLike(pt) : tf.pow(tf.relu(tf.sub(1, pt)), gamma);
    let perSample = tf.neg(tf.mul(modulator, logPt)) as tf.Tensor1D; // [B]
    const alphaOption = options.alpha;
    if (alphaOption !== undefined && typeof alphaOption !== 'number') {
      const alpha = perClass(alphaOption, numClasses, 'alpha');
      perSample = tf.mul(perSample, tf.gather(alpha, labelsInt)) as tf.Tensor1D;
    }
    return tf.mean(perSample) as tf.Scalar;
  });
}

/**
 * Sigmoid focal loss for multi-label classification (each of K outputs an
 * independent binary problem). logits [B, K], targets {0,1} float [B, K] -> scalar,
 * the mean over all B*K elements. Per element, with p = sigmoid(z):
 * `p_t = p if t = 1 else 1 - p`, `alpha_t = alpha if t = 1 else 1 - alpha`,
 * loss `-alpha_t (1 - p_t)^gamma log p_t`. `alpha: 0.5` weights both sides equally
 * (half of the unweighted loss).
 */
export function focalLossSigmoid(logits: tf.Tensor2D, targets: tf.Tensor2D, options: FocalOptions = {}): tf.Scalar {
  const numClasses = checkLogits(logits, 'focalLossSigmoid');
  const gamma = options.gamma ?? 2;
  if (!(gamma >= 0 && Number.isFinite(gamma))) throw invalidOption('gamma', 'a number >= 0', gamma);
  const alphaOption = options.alpha ?? 0.25;
  if (typeof alphaOption === 'number' && !(alphaOption >= 0 && alphaOption <= 1)) {
    throw invalidOption('alpha', 'a number in [0, 1]', alphaOption);
  }
  return tf.tidy(() => {
    const t = tf.cast(targets, 'float32');
    // log p = -softplus(-z), log(1 - p) = -softplus(z): stable for large |z|.
    const logP = tf.neg(tf.softplus(tf.neg(logits)));
    const logOneMinusP = tf.neg(tf.softplus(logits));
    const logPt = tf.add(tf.mul(t, logP), tf.mul(tf.sub(1, t), logOneMinusP)); // [B, K]
    const pt = tf.exp(logPt);
    const modulator = gamma === 0 ? tf.onesLike(pt) : tf.pow(tf.relu(tf.sub(1, pt)), gamma);
    const alpha = typeof alphaOption === 'number' ? tf.scalar(alphaOption) : perClass(alphaOption, numClasses, 'alpha'); // [] or [K]
    const alphaT = tf.add(tf.mul(t, alpha), tf.mul(tf.sub(1, t), tf.sub(1, alpha))); // [B, K]
    return tf.mean(tf.neg(tf.mul(tf.mul(alphaT, modulator), logPt))) as tf.Scalar;
  });
}

/** Number of samples per class: counts[k] = #{i : labels[i] = k}; labels < 0 (unlabeled) are ignored. */
export function classCounts(labels: ArrayLike<number>, numClasses: number): number[] {
  const counts = new Array<number>(numClasses).fill(0);
  for (let i = 0; i < labels.length; i++) {
    const y = labels[i];
    if (y < 0) continue;
    if (!Number.isInteger(y) || y >= numClasses)
      throw invalidOption(`labels[${i}]`, `a class in 0..${numClasses - 1}`, y);
    counts[y]++;
  }
  return counts;
}

/**
 * Inverse-frequency class weights `w_k = N / (K' n_k)` (scikit-learn's "balanced"):
 * N samples, K' classes present. A class with no samples gets weight 0.
 */
export function inverseFrequencyWeights(counts: ArrayLike<number>): number[] {
  let total = 0;
  let present = 0;
  for (let k = 0; k < counts.length; k++) {
    total += counts[k];
    if (counts[k] > 0) present++;
  }
  return Array.from(counts, (n) => (n > 0 ? total / (present * n) : 0));
}

/**
 * Class-balanced weights from the effective number of samples (Cui et al., 2019,
 * "Class-Balanced Loss Based on Effective Number of Samples"):
 * `E_n = (1 - beta^n) / (1 - beta)`, `w_k ∝ 1 / E_{n_k} = (1 - beta) / (1 - beta^{n_k})`,
 * normalised so the weights of present classes sum to their number K'.
 * beta in [0, 1): 0 gives equal weights, beta -> 1 approaches inverse frequency.
 */
export function effectiveNumberWeights(counts: ArrayLike<number>, beta = 0.999): number[] {
  if (!(beta >= 0 && beta < 1)) throw invalidOption('beta', 'a number in [0, 1)', beta);
  const raw = Array.from(counts, (n) => (n > 0 ? (1 - beta) / (1 - beta ** n) : 0));
  const present = raw.filter((w) => w > 0).length;
  const sum = raw.reduce((a, b) => a + b, 0);
  return raw.map((w) => (sum > 0 ? (w * present) / sum : 0));
}
