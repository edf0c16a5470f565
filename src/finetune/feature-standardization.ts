/**
 * Linear probes train on standardised features (they converge far faster);
 * afterwards the standardisation is folded into the head's first linear layer
 * so the classifier takes raw backbone features again.
 */
import * as tf from '@tensorflow/tfjs';
import type { Classifier } from './classifier.js';

export interface Moments {
  mean: Float32Array; // [D]
  std: Float32Array; // [D]
}

export function featureMoments(features: Float32Array, dim: number, positions: Int32Array): Moments {
  const mean = new Float32Array(dim);
  const std = new Float32Array(dim);
  for (const p of positions) for (let d = 0; d < dim; d++) mean[d] += features[p * dim + d] / positions.length;
  for (const p of positions)
    for (let d = 0; d < dim; d++) std[d] += (features[p * dim + d] - mean[d]) ** 2 / positions.length;
  for (let d = 0; d < dim; d++) std[d] = Math.sqrt(std[d] + 1e-6);
  return { mean, std };
}

export function standardize(features: Float32Array, dim: number, m: Moments): Float32Array {
  const out = new Float32Array(features.length);
  for (let i = 0; i < features.length; i++) out[i] = (features[i] - m.mean[i % dim]) / m.std[i % dim];
  return out;
}

/** The head's first linear layer (kernel [D, H] and bias [H]), where a feature standardisation can be folded in. */
export function firstLinearOf(classifier: Classifier): { kernel: tf.Variable; bias: tf.Variable } | undefined {
  const vars = classifier.head.variables();
  const kernel = vars.find((v) => v.kind === 'dense');
  const bias = kernel && vars.find((v) => v.name === kernel.name.replace(/weight$/, 'bias'));
  return kernel && bias ? { kernel: kernel.variable, bias: bias.variable } : undefined;
}

/** W x' + b with x' = (x - mean) / std equals (W / std) x + (b - (mean / std) W): rewrite the layer so it takes raw features. */
export function foldStandardization(layer: { kernel: tf.Variable; bias: tf.Variable }, m: Moments): void {
  tf.tidy(() => {
    const inverseStd = tf.tensor2d(
      Float32Array.from(m.std, (v) => 1 / v),
      [m.std.length, 1],
    ); // [D, 1]
    const scaled = tf.mul(layer.kernel, inverseStd); // [D, H]
    const shift = tf.matMul(tf.tensor2d(m.mean, [1, m.mean.length]), scaled).reshape([-1]); // [H]
    layer.bias.assign(tf.sub(layer.bias, shift));
    layer.kernel.assign(scaled);
  });
}
