/**
 * A tiny real conv net implementing the Backbone interface, for finetuning tests
 * that must not wait for (or depend on) the ResNet code: conv1 3x3 -> bn1 ->
 * ReLU -> layer4.0.conv1 3x3 stride 2 -> ReLU -> global average pool -> [B, 12].
 * Variable names follow the torchvision pattern so stage freezing by prefix works.
 */
import * as tf from '@tensorflow/tfjs';
import type { Backbone, NamedVariable } from '../../src/backbones/types.js';
import type { Rng } from '../../src/util/rng.js';

function heNormal(shape: number[], fanIn: number, rng: Rng): tf.Variable {
  const n = shape.reduce((a, b) => a * b, 1);
  const values = new Float32Array(n);
  const std = Math.sqrt(2 / fanIn);
  for (let i = 0; i < n; i++) values[i] = rng.normal() * std;
  return tf.tidy(() => tf.variable(tf.tensor(values, shape)));
}

export function createTinyBackbone(channels: 1 | 3, rng: Rng, width = 8): Backbone {
  const conv1 = heNormal([3, 3, channels, width], 9 * channels, rng);
  const gamma = tf.tidy(() => tf.variable(tf.ones([width])));
  const beta = tf.tidy(() => tf.variable(tf.zeros([width])));
  const runningMean = tf.tidy(() => tf.variable(tf.zeros([width]), false));
  const runningVar = tf.tidy(() => tf.variable(tf.ones([width]), false));
  const conv2 = heNormal([3, 3, width, width + 4], 9 * width, rng);
  const featureDim = width + 4;
  const variables: NamedVariable[] = [
    { name: 'conv1.weight', variable: conv1, trainable: true, kind: 'conv' },
    { name: 'bn1.weight', variable: gamma, trainable: true, kind: 'bn-gamma' },
    { name: 'bn1.bias', variable: beta, trainable: true, kind: 'bn-beta' },
    { name: 'bn1.running_mean', variable: runningMean, trainable: false, kind: 'bn-mean' },
    { name: 'bn1.running_var', variable: runningVar, trainable: false, kind: 'bn-var' },
    { name: 'layer4.0.conv1.weight', variable: conv2, trainable: true, kind: 'conv' },
  ];
  return {
    config: { arch: 'resnet18', inputChannels: channels, widthMultiplier: 1, stem: 'small' },
    featureDim,
    variables: () => variables.slice(),
    features(x, training) {
      return tf.tidy(() => {
        const y = tf.conv2d(x, conv1 as tf.Tensor4D, 1, 'same');
        let mean: tf.Tensor = runningMean;
        let variance: tf.Tensor = runningVar;
        if (training) {
          const m = tf.moments(y, [0, 1, 2]);
          mean = m.mean;
          variance = m.variance;
          runningMean.assign(tf.add(tf.mul(runningMean, 0.9), tf.mul(mean, 0.1)));
          runningVar.assign(tf.add(tf.mul(runningVar, 0.9), tf.mul(variance, 0.1)));
        }
        const normed = tf.relu(tf.batchNorm(y, mean, variance, beta, gamma, 1e-5)) as tf.Tensor4D;
        const z = tf.relu(tf.conv2d(normed, conv2 as tf.Tensor4D, 2, 'same'));
        return tf.mean(z, [1, 2]) as tf.Tensor2D;
      });
    },
    dispose() {
      for (const v of variables) v.variable.dispose();
    },
  };
}
