/**
 * Weighted kNN classification on frozen features (Wu et al., 2018: "we use the
 * cosine similarity ... each neighbour votes with weight exp(similarity / T)"):
 * the pretraining monitor's accuracy and the label check's neighbourhood vote.
 */
import * as tf from '@tensorflow/tfjs';
import { invalidOption } from '../util/errors.js';
import { cosineTopK, type TopK } from './cosine-search.js';

/**
 * Class distributions [Q * K] from the neighbours in `top`: neighbour j of a
 * query votes for its label with weight exp(s_j / T), normalised per query;
 * labels < 0 do not vote; a query without votes gets the uniform distribution.
 * `predicted` is each row's argmax (ties to the lower class).
 */
export function knnVotes(
  top: TopK,
  labels: Int32Array,
  numClasses: number,
  temperature: number,
): { distribution: Float32Array; predicted: Int32Array } {
  const q = top.indices.length / Math.max(1, top.k);
  const distribution = new Float32Array(q * numClasses);
  const predicted = new Int32Array(q);
  const votes = new Float64Array(numClasses);
  for (let row = 0; row < q; row++) {
    votes.fill(0);
    let total = 0;
    for (let j = 0; j < top.k; j++) {
      const label = labels[top.indices[row * top.k + j]];
      if (label < 0) continue;
      // exp((s - 1) / T) is proportional to exp(s / T) and cannot overflow (s <= 1); the factor cancels.
      const weight = Math.exp((top.similarities[row * top.k + j] - 1) / temperature);
      votes[label] += weight;
      total += weight;
    }
    let best = 0;
    for (let c = 0; c < numClasses; c++) {
      distribution[row * numClasses + c] = total > 0 ? votes[c] / total : 1 / numClasses;
      if (votes[c] > votes[best]) best = c;
    }
    predicted[row] = best;
  }
  return { distribution, predicted };
}

function checkTemperature(where: string, temperature: number): void {
  if (!(temperature > 0)) throw new Error(`${where}: Expected a temperature > 0 but received ${temperature}`);
}

/**
 * Classifies each query by its k most cosine-similar training features.
 * Returns one class index per query.
 *
 * @param trainFeatures [N, D] features of the labelled memory bank
 * @param trainLabels   [N] class indices (< 0: does not vote)
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
  if (trainLabels.length !== n) {
    throw new Error(`knnClassify: ${trainLabels.length} labels for ${n} training features`);
  }
  if (trainFeatures.shape[1] !== queryFeatures.shape[1]) {
    throw new Error(
      `knnClassify: feature sizes differ (train ${trainFeatures.shape[1]}, query ${queryFeatures.shape[1]})`,
    );
  }
  if (!(k >= 1) || !Number.isInteger(k)) throw new Error(`knnClassify: Expected an integer k >= 1 but received ${k}`);
  checkTemperature('knnClassify', temperature);
  let numClasses = 1;
  for (const label of trainLabels) numClasses = Math.max(numClasses, label + 1);
  const top = cosineTopK(trainFeatures, k, queryFeatures);
  return knnVotes(top, trainLabels, numClasses, temperature).predicted;
}

/**
 * Leave-one-out kNN class distribution [N * K] of each sample from its k most
 * cosine-similar other samples. features [N * dim]; labels < 0 neither vote nor
 * count (their rows are still filled).
 */
export function knnLabelDistribution(
  features: Float32Array,
  dim: number,
  labels: Int32Array,
  numClasses: number,
  k = 10,
  temperature = 0.1,
): Float32Array {
  const n = labels.length;
  if (features.length !== n * dim) throw invalidOption('features', `${n} x ${dim} values`, features.length);
  if (n < 2) throw invalidOption('k', 'at least 1 neighbour (2 or more samples)', k);
  checkTemperature('knnLabelDistribution', temperature);
  const bank = tf.tensor2d(features, [n, dim]);
  try {
    return knnVotes(cosineTopK(bank, k, undefined, { excludeSelf: true }), labels, numClasses, temperature)
      .distribution;
  } finally {
    bank.dispose();
  }
}

/** Fraction of `predicted` equal to `labels` (0 for none). */
export function accuracyOf(predicted: ArrayLike<number>, labels: ArrayLike<number>): number {
  if (predicted.length === 0) return 0;
  let correct = 0;
  for (let i = 0; i < predicted.length; i++) if (predicted[i] === labels[i]) correct++;
  return correct / predicted.length;
}
