/**
 * Linear probes train on standardised features (they converge far faster);
 * afterwards the standardisation is folded into the head's first linear layer
 * so the classifier takes raw backbone features again.
 */
import * as tf from '@tensorflow/tfjs';
import { featureMoments, type Moments, standardize } from '../probes/linear-probe.js';
import type { Classifier } from './classifier.js';

// The probes' standardisation, re-exported for the finetuning stages that fold it into a head.
export { featureMoments, type Moments, standardize };

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
