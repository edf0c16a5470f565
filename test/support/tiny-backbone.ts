/**
 * The one tiny backbone of the tests: a real small conv net implementing the
 * Backbone interface, fast enough for every test that does not test the ResNet
 * itself. conv1 3x3 (C -> 8) -> bn1 -> ReLU -> layer4.0.conv1 3x3 stride 2
 * (8 -> featureDim, with a bias) -> ReLU -> global average pool: [B, H, W, C] -> [B, featureDim].
 * Variable names follow torchvision, so stage freezing by prefix ('layer4') and
 * no-decay on BatchNorm and biases see what they see on a ResNet.
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

function filled(shape: number[], value: number, trainable: boolean): tf.Variable {
  return tf.tidy(() => tf.variable(tf.fill(shape, value), trainable));
}

export function createTinyBackbone(channels: 1 | 3, rng: Rng, featureDim = 16): Backbone {
  const width = 8;
  const conv1 = heNormal([3, 3, channels, width], 9 * channels, rng.derive('conv1'));
  const gamma = filled([width], 1, true);
  const beta = filled([width], 0, true);
  const runningMean = filled([width], 0, false);
  const runningVar = filled([width], 1, false);
  const conv2 = heNormal([3, 3, width, featureDim], 9 * width, rng.derive('conv2'));
  const bias2 = filled([featureDim], 0, true);
  const variables: NamedVariable[] = [
    { name: 'conv1.weight', variable: conv1, trainable: true, kind: 'conv' },
    { name: 'bn1.weight', variable: gamma, trainable: true, kind: 'bn-gamma' },
    { name: 'bn1.bias', variable: beta, trainable: true, kind: 'bn-beta' },
    { name: 'bn1.running_mean', variable: runningMean, trainable: false, kind: 'bn-mean' },
    { name: 'bn1.running_var', variable: runningVar, trainable: false, kind: 'bn-var' },
    { name: 'layer4.0.conv1.weight', variable: conv2, trainable: true, kind: 'conv' },
    { name: 'layer4.0.conv1.bias', variable: bias2, trainable: true, kind: 'bias' },
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
          // PyTorch's running statistics: momentum 0.1, unbiased variance.
          const count = y.size / width;
          runningMean.assign(tf.add(tf.mul(runningMean, 0.9), tf.mul(mean, 0.1)));
          runningVar.assign(tf.add(tf.mul(runningVar, 0.9), tf.mul(variance, (0.1 * count) / Math.max(1, count - 1))));
        }
        const normed = tf.relu(tf.batchNorm(y, mean, variance, beta, gamma, 1e-5)) as tf.Tensor4D;
        const z = tf.relu(tf.add(tf.conv2d(normed, conv2 as tf.Tensor4D, 2, 'same'), bias2));
        return tf.mean(z, [1, 2]) as tf.Tensor2D;
      });
    },
    dispose() {
      for (const v of variables) v.variable.dispose();
    },
  };
}
