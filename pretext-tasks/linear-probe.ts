/**
 * Linear probe: how linearly separable a frozen backbone's pooled features are.
 * The standard yardstick of self-supervised pretraining: features of labeled
 * images are extracted once (inference mode, no augmentation), standardised with
 * the training features' mean and std, and a multinomial logistic regression
 * (softmax + L2 penalty, full-batch Adam) is fitted on them; its accuracy on the
 * test features is the probe accuracy.
 */
import * as tf from '@tensorflow/tfjs';
import type { Backbone } from '../src/backbones/types.js';
import { createLoader } from '../src/data/loader.js';
import type { ImageSource } from '../src/data/types.js';
import { evaluationPipeline, extractFeatures } from '../src/train/monitor.js';
import { UsageError } from '../src/util/errors.js';
import { crossEntropyFromLogits } from './losses.js';
import type { InputSpec } from './types.js';

/** Features of N images, row-major [N, dim], and their class indices. */
export interface FeatureSet {
  features: Float32Array;
  labels: Int32Array;
  dim: number;
}

export interface LinearProbeOptions {
  /** Full-batch Adam steps (default 500). */
  steps?: number;
  /** Adam learning rate (default 0.05). */
  learningRate?: number;
  /** L2 penalty l2 * ||W||² added to the mean cross-entropy (default 1e-4). */
  l2?: number;
}

export interface LinearProbeResult {
  trainAccuracy: number;
  testAccuracy: number;
  trainImages: number;
  testImages: number;
  featureDim: number;
  /** Final training loss (cross-entropy + penalty). */
  trainLoss: number;
}

function accuracy(logits: tf.Tensor2D, labels: Int32Array): number {
  return tf.tidy(() => {
    const predicted = tf.argMax(logits, 1).dataSync();
    let correct = 0;
    for (let i = 0; i < labels.length; i++) if (predicted[i] === labels[i]) correct++;
    return labels.length ? correct / labels.length : Number.NaN;
  });
}

/** Fits a softmax regression on `train` and reports train and test accuracy. Leaves no tensors behind. */
export function linearProbe(
  train: FeatureSet,
  test: FeatureSet,
  numClasses: number,
  options: LinearProbeOptions = {},
): LinearProbeResult {
  const { dim } = train;
  if (test.dim !== dim) throw new UsageError(`linearProbe: train features have ${dim} dims, test features ${test.dim}`);
  if (train.features.length !== train.labels.length * dim || test.features.length !== test.labels.length * dim) {
    throw new UsageError('linearProbe: features and labels disagree in count');
  }
  const steps = options.steps ?? 500;
  const l2 = options.l2 ?? 1e-4;
  const learningRate = options.learningRate ?? 0.05;
  // tf.variable keeps a reference to its initial tensor: create both inside tidy.
  const weights = tf.tidy(() => tf.variable(tf.zeros([dim, numClasses])));
  const bias = tf.tidy(() => tf.variable(tf.zeros([numClasses])));
  // Adam moments, written out (tf.train.adam leaves a tensor behind on dispose).
  const moments = [weights, bias].map((p) => ({
    param: p,
    first: tf.tidy(() => tf.variable(tf.zerosLike(p))),
    second: tf.tidy(() => tf.variable(tf.zerosLike(p))),
  }));
  const data = tf.tidy(() => {
    const xTrain = tf.tensor2d(train.features, [train.labels.length, dim]);
    const { mean, variance } = tf.moments(xTrain, 0);
    const std = tf.sqrt(tf.add(variance, 1e-6));
    return {
      xTrain: tf.div(tf.sub(xTrain, mean), std) as tf.Tensor2D, // [n, D]
      xTest: tf.div(tf.sub(tf.tensor2d(test.features, [test.labels.length, dim]), mean), std) as tf.Tensor2D, // [m, D]
      yTrain: tf.tensor1d(train.labels, 'int32'),
    };
  });
  try {
    const objective = () =>
      tf.add(
        crossEntropyFromLogits(tf.add(tf.matMul(data.xTrain, weights), bias) as tf.Tensor2D, data.yTrain),
        tf.mul(tf.sum(tf.square(weights)), l2),
      ) as tf.Scalar;
    const [beta1, beta2] = [0.9, 0.999];
    for (let s = 1; s <= steps; s++) {
      tf.tidy(() => {
        const { grads } = tf.variableGrads(objective, [weights, bias]);
        for (const m of moments) {
          const g = grads[m.param.name];
          m.first.assign(tf.add(tf.mul(m.first, beta1), tf.mul(g, 1 - beta1)));
          m.second.assign(tf.add(tf.mul(m.second, beta2), tf.mul(tf.square(g), 1 - beta2)));
          const corrected = tf.div(m.first, 1 - beta1 ** s);
          const scale = tf.add(tf.sqrt(tf.div(m.second, 1 - beta2 ** s)), 1e-8);
          m.param.assign(tf.sub(m.param, tf.mul(tf.div(corrected, scale), learningRate)));
        }
      });
    }
    const trainLoss = tf.tidy(() => objective().dataSync()[0]);
    const logits = (x: tf.Tensor2D) => tf.add(tf.matMul(x, weights), bias) as tf.Tensor2D;
    return {
      trainAccuracy: tf.tidy(() => accuracy(logits(data.xTrain), train.labels)),
      testAccuracy: tf.tidy(() => accuracy(logits(data.xTest), test.labels)),
      trainImages: train.labels.length,
      testImages: test.labels.length,
      featureDim: dim,
      trainLoss,
    };
  } finally {
    tf.dispose([weights, bias, data.xTrain, data.xTest, data.yTrain]);
    for (const m of moments) tf.dispose([m.first, m.second]);
  }
}

/**
 * Inference-mode features of `indices` of a labeled source, through the
 * evaluation view (resize, center crop, normalise) of `input`.
 */
export async function backboneFeatures(
  backbone: Backbone,
  source: ImageSource,
  indices: Int32Array,
  input: InputSpec,
  batchSize = 256,
): Promise<FeatureSet> {
  if (!source.labels) throw new UsageError(`${source.describe(0)}: a linear probe needs labeled images`);
  const pipeline = evaluationPipeline(input);
  const { features, labels } = await extractFeatures(
    backbone,
    (subset) =>
      createLoader(source, {
        batchSize,
        views: [pipeline],
        channels: input.channels,
        seed: 0,
        epoch: 0,
        shuffle: false,
        dropLast: false,
        subset,
      }),
    indices,
    source.labels,
  );
  const values = features.dataSync() as Float32Array;
  const dim = features.shape[1];
  features.dispose();
  return { features: values, labels, dim };
}

/** Extracts features of the train and test images and fits a linear probe on them. */
export async function probeBackbone(
  backbone: Backbone,
  train: { source: ImageSource; indices: Int32Array },
  test: { source: ImageSource; indices: Int32Array },
  input: InputSpec,
  options: LinearProbeOptions = {},
): Promise<LinearProbeResult> {
  const trainSet = await backboneFeatures(backbone, train.source, train.indices, input);
  const testSet = await backboneFeatures(backbone, test.source, test.indices, input);
  let classes = train.source.classNames?.length ?? 0;
  for (const labels of [trainSet.labels, testSet.labels])
    for (const label of labels) classes = Math.max(classes, label + 1);
  return linearProbe(trainSet, testSet, classes, options);
}
