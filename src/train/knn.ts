/**
 * Monitors that tell whether pretraining works without training a classifier:
 * a weighted kNN classifier on frozen features (Wu et al., 2018: cosine
 * similarity, votes weighted by exp(similarity / temperature)), and the
 * embedding-spread collapse measure.
 */
import * as tf from '@tensorflow/tfjs';

/**
 * Classifies each query by its k most cosine-similar training features; each
 * neighbour votes for its label with weight exp(similarity / temperature).
 * Ties go to the lower class index. Returns one class index per query.
 *
 * @param trainFeatures [N, D] features of the labelled memory bank
 * @param trainLabels   [N] class indices (>= 0)
 * @param queryFeatures [Q, D]
 * @param k             neighbours (capped at N)
 * @param temperature   vote temperature (default 0.1)
 */
export function knnClassify(
  trainFeatures: tf.Tensor2D,
  trainLabels: Int32Array,
  queryFeatures: tf.Tensor2D,
  k: number,
  temperature = 0.1,
): Int32Array {
  const [n] = trainFeatures.shape;
  const [q] = queryFeatures.shape;
  if (trainLabels.length !== n) {
    throw new Error(`knnClassify: ${trainLabels.length} labels for ${n} training features`);
  }
  if (trainFeatures.shape[1] !== queryFeatures.shape[1]) {
    throw new Error(
      `knnClassify: feature sizes differ (train ${trainFeatures.shape[1]}, query ${queryFeatures.shape[1]})`,
    );
  }
  if (!(k >= 1) || !Number.isInteger(k)) throw new Error(`knnClassify: Expected an integer k >= 1 but received ${k}`);
  if (!(temperature > 0)) throw new Error(`knnClassify: Expected a temperature > 0 but received ${temperature}`);
  const kk = Math.min(k, n);
  let numClasses = 0;
  for (const label of trainLabels) numClasses = Math.max(numClasses, label + 1);
  const predictions = new Int32Array(q);
  const bank = tf.tidy(() => tf.div(trainFeatures, tf.norm(trainFeatures, 'euclidean', 1, true).maximum(1e-12)));
  const chunk = Math.max(1, Math.floor(4_000_000 / Math.max(1, n)));
  try {
    for (let start = 0; start < q; start += chunk) {
      const size = Math.min(chunk, q - start);
      const [values, indices] = tf.tidy(() => {
        const query = queryFeatures.slice([start, 0], [size, -1]);
        const normalised = tf.div(query, tf.norm(query, 'euclidean', 1, true).maximum(1e-12));
        const similarity = tf.matMul(normalised, bank, false, true); // [size, N]
        const top = tf.topk(similarity, kk);
        return [top.values.arraySync() as number[][], top.indices.arraySync() as number[][]];
      });
      for (let row = 0; row < size; row++) {
        const votes = new Float64Array(numClasses);
        for (let j = 0; j < kk; j++) {
          const label = trainLabels[indices[row][j]];
          if (label >= 0) votes[label] += Math.exp(values[row][j] / temperature);
        }
        let best = 0;
        for (let c = 1; c < numClasses; c++) if (votes[c] > votes[best]) best = c;
        predictions[start + row] = best;
      }
    }
  } finally {
    bank.dispose();
  }
  return predictions;
}

/** Fraction of `predictions` equal to `labels`. */
export function accuracy(predictions: Int32Array, labels: Int32Array): number {
  if (predictions.length === 0) return 0;
  let correct = 0;
  for (let i = 0; i < predictions.length; i++) if (predictions[i] === labels[i]) correct++;
  return correct / predictions.length;
}

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
