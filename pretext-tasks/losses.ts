/**
 * Losses and metrics of the pretext tasks, as pure functions of tensors (no
 * state, no variables). Call them inside `tf.tidy`.
 */
import * as tf from '@tensorflow/tfjs';
import { l2Normalize } from '../src/backbones/heads.js';

/**
 * Mean softmax cross-entropy of integer labels under logits:
 * L = -1/N sum_n log( exp(l[n, y_n]) / sum_k exp(l[n, k]) ).
 * logits [N, K], labels [N] int32 in [0, K) -> scalar.
 */
export function crossEntropyFromLogits(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar {
  return tf.tidy(() => {
    const logProbabilities = tf.logSoftmax(logits); // [N, K]
    const oneHot = tf.oneHot(tf.cast(labels, 'int32'), logits.shape[1]); // [N, K]
    return tf.neg(tf.mean(tf.sum(tf.mul(oneHot, logProbabilities), 1))) as tf.Scalar;
  });
}

/** Fraction of rows whose argmax equals the label. logits [N, K], labels [N] -> scalar in [0, 1]. */
export function accuracyFromLogits(logits: tf.Tensor2D, labels: tf.Tensor1D): tf.Scalar {
  return tf.tidy(
    () => tf.mean(tf.cast(tf.equal(tf.argMax(logits, 1), tf.cast(labels, 'int32')), 'float32')) as tf.Scalar,
  );
}

/**
 * Cosine-similarity logits of SimCLR: the 2B embeddings [z1; z2] are L2-normalised,
 * compared pairwise and divided by the temperature; each one's similarity with
 * itself is pushed to -1e9 so it never counts. z1, z2 [B, K] -> [2B, 2B].
 */
export function contrastiveLogits(z1: tf.Tensor2D, z2: tf.Tensor2D, temperature: number): tf.Tensor2D {
  return tf.tidy(() => {
    const z = l2Normalize(tf.concat([z1, z2], 0)); // [2B, K]
    const n = z.shape[0];
    const similarity = tf.div(tf.matMul(z, z, false, true), temperature); // [2B, 2B]
    const selfMask = tf.mul(tf.eye(n), -1e9); // [2B, 2B]
    return tf.add(similarity, selfMask) as tf.Tensor2D;
  });
}

/** Index of the positive of each of the 2B rows: i <-> i + B. */
export function contrastivePositives(batchSize: number): tf.Tensor1D {
  const positives = new Int32Array(2 * batchSize);
  for (let i = 0; i < batchSize; i++) {
    positives[i] = i + batchSize;
    positives[i + batchSize] = i;
  }
  return tf.tensor1d(positives, 'int32');
}

/**
 * NT-Xent (normalised temperature-scaled cross-entropy), SimCLR eq. (1):
 * l(i, j) = -log( exp(sim(z_i, z_j)/t) / sum_{k != i} exp(sim(z_i, z_k)/t) ),
 * with sim the cosine similarity, averaged over all 2B ordered positive pairs
 * (the loss of z1[b] against z2[b] and of z2[b] against z1[b]).
 * z1, z2 [B, K] (two views of the same B images, row b matches row b) -> scalar.
 */
export function ntXentLoss(z1: tf.Tensor2D, z2: tf.Tensor2D, temperature: number): tf.Scalar {
  if (!(temperature > 0)) throw new RangeError(`ntXentLoss needs a positive temperature, got ${temperature}`);
  if (z1.shape[0] !== z2.shape[0] || z1.shape[1] !== z2.shape[1]) {
    throw new RangeError(`ntXentLoss needs z1 and z2 of the same shape, got [${z1.shape}] and [${z2.shape}]`);
  }
  return tf.tidy(() => {
    const logits = contrastiveLogits(z1, z2, temperature); // [2B, 2B]
    return crossEntropyFromLogits(logits, contrastivePositives(z1.shape[0]));
  });
}

/**
 * Contrastive top-1 accuracy: fraction of the 2B embeddings whose most similar
 * other embedding is its positive (the other view of the same image).
 * z1, z2 [B, K] -> scalar in [0, 1].
 */
export function contrastiveAccuracy(z1: tf.Tensor2D, z2: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => accuracyFromLogits(contrastiveLogits(z1, z2, 1), contrastivePositives(z1.shape[0])));
}

/**
 * The identity in the forward pass, zero gradient in the backward pass
 * (PyTorch's `detach()`; tfjs has no stop-gradient op). The upstream graph
 * still runs backwards with zeros, so use it where the tensor also reaches the
 * loss another way (SimSiam's z) or costs little.
 */
export function stopGradient<T extends tf.Tensor>(x: T): T {
  const identity = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => ({
    value: tf.clone(args[0] as tf.Tensor),
    gradFunc: (dy: tf.Tensor | tf.Tensor[]) => tf.zerosLike(dy as tf.Tensor),
  }));
  return identity(x) as T;
}

/** Cosine similarity of matching rows: a, b [N, D] -> [N]. */
export function rowCosine(a: tf.Tensor2D, b: tf.Tensor2D): tf.Tensor1D {
  return tf.tidy(() => tf.sum(tf.mul(l2Normalize(a), l2Normalize(b)), 1) as tf.Tensor1D);
}

function checkSameShape(name: string, a: tf.Tensor, b: tf.Tensor): void {
  if (a.shape.join(',') !== b.shape.join(',')) {
    throw new RangeError(`${name} needs inputs of the same shape, got [${a.shape}] and [${b.shape}]`);
  }
}

/**
 * Negative cosine similarity, SimSiam eq. (1): D(p, z) = -1/N sum_n p_n . z_n / (||p_n|| ||z_n||).
 * p, z [N, D] -> scalar in [-1, 1]. No stop-gradient here (see simsiamLoss).
 */
export function negativeCosineSimilarity(p: tf.Tensor2D, z: tf.Tensor2D): tf.Scalar {
  checkSameShape('negativeCosineSimilarity', p, z);
  return tf.tidy(() => tf.neg(tf.mean(rowCosine(p, z))) as tf.Scalar);
}

/**
 * SimSiam's symmetrised loss, eq. (2): L = D(p1, stopgrad(z2)) / 2 + D(p2, stopgrad(z1)) / 2.
 * p1, p2 predictions and z1, z2 projections of the two views, each [N, D] -> scalar in [-1, 1].
 */
export function simsiamLoss(p1: tf.Tensor2D, p2: tf.Tensor2D, z1: tf.Tensor2D, z2: tf.Tensor2D): tf.Scalar {
  return tf.tidy(
    () =>
      tf.mul(
        tf.add(negativeCosineSimilarity(p1, stopGradient(z2)), negativeCosineSimilarity(p2, stopGradient(z1))),
        0.5,
      ) as tf.Scalar,
  );
}

/**
 * BYOL's normalised mean squared error, eq. (2): ||q̄ - z̄||² = 2 - 2 <q, z> / (||q|| ||z||),
 * averaged over the N rows. q (online prediction), z (target projection) [N, D] -> scalar in [0, 4].
 */
export function normalizedMse(q: tf.Tensor2D, z: tf.Tensor2D): tf.Scalar {
  checkSameShape('normalizedMse', q, z);
  return tf.tidy(() => tf.mean(tf.sum(tf.square(tf.sub(l2Normalize(q), l2Normalize(z))), 1)) as tf.Scalar);
}

/**
 * BYOL's symmetric loss: L + L~ = normalizedMse(q1, sg(z'2)) + normalizedMse(q2, sg(z'1)),
 * q1, q2 online predictions of views 1 and 2, z1, z2 target projections of views 1 and 2
 * (the target gets no gradient). Each [N, D] -> scalar in [0, 8].
 */
export function byolLoss(q1: tf.Tensor2D, q2: tf.Tensor2D, z1: tf.Tensor2D, z2: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => tf.add(normalizedMse(q1, stopGradient(z2)), normalizedMse(q2, stopGradient(z1))) as tf.Scalar);
}

/** BatchNorm1d without affine parameters: (x - mean) / sqrt(biased var + eps) per column. x [N, D] -> [N, D]. */
export function standardizeColumns(x: tf.Tensor2D, epsilon = 1e-5): tf.Tensor2D {
  return tf.tidy(() => {
    const { mean, variance } = tf.moments(x, 0);
    return tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, epsilon))) as tf.Tensor2D;
  });
}

/**
 * Barlow Twins' cross-correlation matrix, eq. (2): C_ij = sum_b z1_bi z2_bj / N of the
 * batch-standardised projections (each column to mean 0, variance 1, as the official
 * code's BatchNorm1d without affine parameters). z1, z2 [N, D] -> [D, D].
 */
export function crossCorrelation(z1: tf.Tensor2D, z2: tf.Tensor2D): tf.Tensor2D {
  checkSameShape('crossCorrelation', z1, z2);
  return tf.tidy(
    () => tf.div(tf.matMul(standardizeColumns(z1), standardizeColumns(z2), true, false), z1.shape[0]) as tf.Tensor2D,
  );
}

/**
 * Barlow Twins, eq. (1): L = sum_i (1 - C_ii)² + lambda sum_i sum_{j != i} C_ij².
 * z1, z2 [N, D] projections of the two views -> scalar. Needs N >= 2.
 */
export function barlowTwinsLoss(z1: tf.Tensor2D, z2: tf.Tensor2D, lambda: number): tf.Scalar {
  if (z1.shape[0] < 2) throw new RangeError(`barlowTwinsLoss needs a batch of 2 or more, got ${z1.shape[0]}`);
  return tf.tidy(() => barlowTwinsObjective(crossCorrelation(z1, z2), lambda));
}

/** Eq. (1) of Barlow Twins on a cross-correlation matrix c [D, D] -> scalar. */
export function barlowTwinsObjective(c: tf.Tensor2D, lambda: number): tf.Scalar {
  if (!(lambda >= 0)) throw new RangeError(`barlowTwinsLoss needs lambda >= 0, got ${lambda}`);
  return tf.tidy(() => {
    // Off-diagonal sum = sum of all squares - sum of diagonal squares (no [D, D] mask).
    const diagonal = diagonalOf(c); // [D]
    const onDiagonal = tf.sum(tf.square(tf.sub(diagonal, 1)));
    const offDiagonal = tf.sub(tf.sum(tf.square(c)), tf.sum(tf.square(diagonal)));
    return tf.add(onDiagonal, tf.mul(offDiagonal, lambda)) as tf.Scalar;
  });
}

/** The diagonal of a square matrix [D, D] -> [D], by a strided gather of the flattened matrix. */
export function diagonalOf(m: tf.Tensor2D): tf.Tensor1D {
  const d = m.shape[0];
  return tf.tidy(() => tf.gather(tf.reshape(m, [d * d]), tf.range(0, d * d, d + 1, 'int32')) as tf.Tensor1D);
}

export interface VicregTerms {
  /** s(Z, Z'): mean squared distance of matching rows, sum over D / (N D). */
  invariance: tf.Scalar;
  /** (v(Z) + v(Z')) / 2, v = mean_j max(0, 1 - sqrt(Var(z_j) + eps)) with unbiased variance. */
  variance: tf.Scalar;
  /** c(Z) + c(Z'), c = sum_{i != j} Cov(Z)_ij² / D with Cov = (Z - mean)ᵀ(Z - mean) / (N - 1). */
  covariance: tf.Scalar;
}

function varianceTerm(z: tf.Tensor2D, epsilon: number): tf.Scalar {
  const n = z.shape[0];
  const { variance } = tf.moments(z, 0);
  const std = tf.sqrt(tf.add(tf.mul(variance, n / (n - 1)), epsilon));
  return tf.mean(tf.relu(tf.sub(1, std))) as tf.Scalar;
}

function covarianceTerm(z: tf.Tensor2D): tf.Scalar {
  const [n, d] = z.shape;
  const centred = tf.sub(z, tf.mean(z, 0));
  const covariance = tf.div(tf.matMul(centred, centred, true, false), n - 1); // [D, D]
  const offDiagonal = tf.sub(tf.sum(tf.square(covariance)), tf.sum(tf.square(diagonalOf(covariance as tf.Tensor2D))));
  return tf.div(offDiagonal, d) as tf.Scalar;
}

/**
 * The three VICReg terms (Bardes, Ponce & LeCun, 2022, eqs. 1-5, as the official
 * code: variance term averaged over the two branches, covariance term summed).
 * z1, z2 [N, D] embeddings of the two views, N >= 2.
 */
export function vicregTerms(z1: tf.Tensor2D, z2: tf.Tensor2D, epsilon = 1e-4): VicregTerms {
  checkSameShape('vicregTerms', z1, z2);
  if (z1.shape[0] < 2) throw new RangeError(`vicregTerms needs a batch of 2 or more, got ${z1.shape[0]}`);
  return tf.tidy(() => ({
    invariance: tf.mean(tf.square(tf.sub(z1, z2))) as tf.Scalar,
    variance: tf.mul(tf.add(varianceTerm(z1, epsilon), varianceTerm(z2, epsilon)), 0.5) as tf.Scalar,
    covariance: tf.add(covarianceTerm(z1), covarianceTerm(z2)) as tf.Scalar,
  }));
}

export interface VicregWeights {
  /** lambda (paper: 25). */
  invariance: number;
  /** mu (paper: 25). */
  variance: number;
  /** nu (paper: 1). */
  covariance: number;
}

/** VICReg, eq. (6): L = lambda s(Z, Z') + mu [v(Z) + v(Z')] / 2 + nu [c(Z) + c(Z')] -> scalar. */
export function vicregLoss(z1: tf.Tensor2D, z2: tf.Tensor2D, weights: VicregWeights, epsilon = 1e-4): tf.Scalar {
  return tf.tidy(() => weightedVicreg(vicregTerms(z1, z2, epsilon), weights));
}

/** The weighted sum of the VICReg terms (eq. 6). */
export function weightedVicreg(terms: VicregTerms, weights: VicregWeights): tf.Scalar {
  return tf.tidy(
    () =>
      tf.addN([
        tf.mul(terms.invariance, weights.invariance),
        tf.mul(terms.variance, weights.variance),
        tf.mul(terms.covariance, weights.covariance),
      ]) as tf.Scalar,
  );
}

/**
 * Logits of InfoNCE with a queue of negatives (MoCo, eq. 1): row n is
 * [q_n . k_n, q_n . queue_1, ..., q_n . queue_K] / t with q and k L2-normalised
 * (the queue holds normalised keys). q, k [N, D], queue [K, D] -> [N, 1 + K]; the positive is column 0.
 */
export function infoNceLogits(q: tf.Tensor2D, k: tf.Tensor2D, queue: tf.Tensor2D, temperature: number): tf.Tensor2D {
  checkSameShape('infoNceLogits', q, k);
  if (queue.shape[1] !== q.shape[1]) {
    throw new RangeError(`infoNceLogits needs a queue of [K, ${q.shape[1]}], got [${queue.shape}]`);
  }
  return tf.tidy(() => {
    const qn = l2Normalize(q);
    const positive = tf.sum(tf.mul(qn, l2Normalize(k)), 1, true); // [N, 1]
    const negative = tf.matMul(qn, queue, false, true); // [N, K]
    return tf.div(tf.concat([positive, negative], 1), temperature) as tf.Tensor2D;
  });
}

/**
 * InfoNCE (MoCo, eq. 1): L_q = -log exp(q.k+/t) / (exp(q.k+/t) + sum_i exp(q.k_i/t)),
 * averaged over the N queries; keys k get no gradient (they come from the momentum encoder).
 * q, k [N, D], queue [K, D] -> scalar.
 */
export function infoNceLoss(q: tf.Tensor2D, k: tf.Tensor2D, queue: tf.Tensor2D, temperature: number): tf.Scalar {
  if (!(temperature > 0)) throw new RangeError(`infoNceLoss needs a positive temperature, got ${temperature}`);
  return tf.tidy(() => {
    const logits = infoNceLogits(q, stopGradient(k), queue, temperature); // [N, 1 + K]
    return crossEntropyFromLogits(logits, tf.zeros([q.shape[0]], 'int32') as tf.Tensor1D);
  });
}

/**
 * The queue after enqueueing `keys` at `pointer` (FIFO over a ring): slots
 * pointer..pointer+N-1 (mod K) become the L2-normalised keys, the others keep
 * their rows. Computed on the device (the pointer never leaves it).
 * queue [K, D], keys [N, D] with N <= K, pointer int32 [1] -> { queue [K, D], pointer [1] = (pointer + N) mod K }.
 */
export function enqueue(
  queue: tf.Tensor2D,
  keys: tf.Tensor2D,
  pointer: tf.Tensor1D,
): { queue: tf.Tensor2D; pointer: tf.Tensor1D } {
  const [size] = queue.shape;
  const n = keys.shape[0];
  if (n > size) throw new RangeError(`enqueue: ${n} keys do not fit a queue of ${size}`);
  return tf.tidy(() => {
    const int = (value: number) => tf.scalar(value, 'int32');
    const slots = tf.range(0, size, 1, 'int32'); // [K]
    const offset = tf.mod(tf.add(tf.sub(slots, tf.cast(pointer, 'int32')), int(size)), int(size)); // [K] slots after the pointer
    const fromKeys = tf.less(offset, int(n)); // [K]
    const source = tf.where(fromKeys, tf.add(offset, int(size)), slots); // row of [queue; keys]
    const updated = tf.gather(tf.concat([queue, l2Normalize(keys)], 0), source) as tf.Tensor2D;
    return { queue: updated, pointer: tf.mod(tf.add(tf.cast(pointer, 'int32'), int(n)), int(size)) as tf.Tensor1D };
  });
}

/**
 * DINO's loss (Caron et al., 2021, eq. 3 and Algorithm 1): teacher outputs of the
 * global views are centred and sharpened, P_t = softmax((t - c) / tau_t); student
 * outputs of every view give log P_s = log_softmax(s / tau_s); the loss is
 * -sum_k P_t log P_s averaged over the batch and over all pairs (teacher view i,
 * student view j) with i != j. Student views 0..G-1 are the same global views as
 * the teacher's. teacher: G tensors [N, K], student: V >= G tensors [N, K], center [1, K].
 */
export function dinoLoss(
  teacher: tf.Tensor2D[],
  student: tf.Tensor2D[],
  center: tf.Tensor2D,
  teacherTemperature: number,
  studentTemperature: number,
): tf.Scalar {
  if (teacher.length < 1 || student.length < 2) {
    throw new RangeError(
      `dinoLoss needs >= 1 teacher and >= 2 student views, got ${teacher.length} and ${student.length}`,
    );
  }
  if (!(teacherTemperature > 0 && studentTemperature > 0)) {
    throw new RangeError(`dinoLoss needs positive temperatures, got ${teacherTemperature} and ${studentTemperature}`);
  }
  return tf.tidy(() => {
    const targets = teacher.map((t) => tf.softmax(tf.div(tf.sub(stopGradient(t), center), teacherTemperature)));
    const logProbabilities = student.map((s) => tf.logSoftmax(tf.div(s, studentTemperature)));
    const terms: tf.Tensor[] = [];
    targets.forEach((target, i) => {
      logProbabilities.forEach((logP, j) => {
        if (i !== j) terms.push(tf.mean(tf.neg(tf.sum(tf.mul(target, logP), 1))));
      });
    });
    return tf.div(tf.addN(terms), terms.length) as tf.Scalar;
  });
}

/** DINO's centre update: c <- m c + (1 - m) mean of the teacher outputs (all global views). -> [1, K]. */
export function dinoCenter(center: tf.Tensor2D, teacher: tf.Tensor2D[], momentum: number): tf.Tensor2D {
  return tf.tidy(() => {
    const batchCenter = tf.mean(tf.concat(teacher, 0), 0, true); // [1, K]
    return tf.add(tf.mul(center, momentum), tf.mul(batchCenter, 1 - momentum)) as tf.Tensor2D;
  });
}
