/**
 * The collapse alarm: the spread of normalised embeddings tells whether a
 * representation has collapsed (all rows alike) without training a classifier.
 */
import * as tf from '@tensorflow/tfjs';

/**
 * Embedding spread: L2-normalise each row of `embeddings` [N, D], take the std of
 * each dimension over the N rows, average over dimensions. About 1/sqrt(D) for a
 * healthy (spread-out) representation, about 0 for a collapsed one (all rows alike).
 * Returns a scalar tensor; call inside tf.tidy.
 */
export function embeddingSpread(embeddings: tf.Tensor2D): tf.Scalar {
  const normalised = tf.div(embeddings, tf.norm(embeddings, 'euclidean', 1, true).maximum(1e-12));
  const { variance } = tf.moments(normalised, 0);
  return variance.sqrt().mean() as tf.Scalar;
}

/** True when `spread` (from {@link embeddingSpread}) is below `minRatio` / sqrt(D). */
export function isCollapsed(spread: number, dimension: number, minRatio: number): boolean {
  return spread < minRatio / Math.sqrt(dimension);
}
