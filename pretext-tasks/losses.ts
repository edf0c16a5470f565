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
