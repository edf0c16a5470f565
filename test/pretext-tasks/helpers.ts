/**
 * Test helpers for the pretext tasks: a tiny convolutional backbone (implements
 * Backbone; two 3x3 convs, ReLU, global average pooling), seeded images, and a
 * plain training step with Adam.
 */
import * as tf from '@tensorflow/tfjs';
import type { AnyPretextTask } from '../../pretext-tasks/registry.js';
import type { Backbone, Head, NamedVariable } from '../../src/backbones/types.js';
import type { Rng } from '../../src/util/rng.js';

function heUniform(shape: number[], fanIn: number, rng: Rng): tf.Variable {
  const count = shape.reduce((a, b) => a * b, 1);
  const values = new Float32Array(count);
  const bound = Math.sqrt(6 / fanIn);
  for (let i = 0; i < count; i++) values[i] = rng.uniform(-bound, bound);
  return tf.tidy(() => tf.variable(tf.tensor(values, shape)));
}

/** A tiny backbone: conv3x3(C->8) ReLU conv3x3/2(8->featureDim) ReLU, global average pool. [B,H,W,C] -> [B, featureDim]. */
export function createTinyBackbone(channels: 1 | 3, rng: Rng, featureDim = 16): Backbone {
  const conv1 = heUniform([3, 3, channels, 8], 9 * channels, rng);
  const conv2 = heUniform([3, 3, 8, featureDim], 72, rng);
  const bias2 = tf.tidy(() => tf.variable(tf.zeros([featureDim])));
  const variables: NamedVariable[] = [
    { name: 'conv1.weight', variable: conv1, trainable: true, kind: 'conv' },
    { name: 'conv2.weight', variable: conv2, trainable: true, kind: 'conv' },
    { name: 'conv2.bias', variable: bias2, trainable: true, kind: 'bias' },
  ];
  return {
    config: { arch: 'resnet18', inputChannels: channels, widthMultiplier: 0.125, stem: 'small' },
    featureDim,
    variables: () => variables,
    dispose: () => {
      for (const v of variables) v.variable.dispose();
    },
    features(x) {
      return tf.tidy(() => {
        const h1 = tf.relu(tf.conv2d(x, conv1 as tf.Tensor4D, 1, 'same'));
        const h2 = tf.relu(tf.add(tf.conv2d(h1, conv2 as tf.Tensor4D, 2, 'same'), bias2));
        return tf.mean(h2, [1, 2]) as tf.Tensor2D;
      });
    },
  };
}

/** Seeded images in [-1, 1]: smooth blobs plus noise, so they are not symmetric. [B, size, size, channels]. */
export function seededImages(batch: number, size: number, channels: number, rng: Rng): tf.Tensor4D {
  const values = new Float32Array(batch * size * size * channels);
  for (let b = 0; b < batch; b++) {
    const cx = rng.uniform(0, size);
    const cy = rng.uniform(0, size);
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        for (let c = 0; c < channels; c++) {
          const blob = Math.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (size * 2));
          values[((b * size + y) * size + x) * channels + c] = blob + (x / size) * 0.5 + 0.3 * rng.normal();
        }
      }
    }
  }
  return tf.tensor4d(values, [batch, size, size, channels]);
}

export interface Trainer {
  /** One optimisation step; returns the loss and metric values. */
  step(views: tf.Tensor[], rng: Rng): { loss: number; metrics: Record<string, number> };
  dispose(): void;
}

/** An Adam trainer over the backbone and the task's heads. */
export function createTrainer(
  task: AnyPretextTask,
  options: object,
  backbone: Backbone,
  heads: unknown,
  learningRate = 0.01,
): Trainer {
  const optimizer = tf.train.adam(learningRate);
  const modules: Head[] = Object.values(task.headModules(heads));
  const trainable = [...backbone.variables(), ...modules.flatMap((m) => m.variables())]
    .filter((v) => v.trainable)
    .map((v) => v.variable);
  return {
    step(views, rng) {
      return tf.tidy(() => {
        let metricValues: Record<string, number> = {};
        const { value, grads } = tf.variableGrads(() => {
          const out = task.step({ backbone, heads, views, training: true, rng }, options);
          metricValues = Object.fromEntries(Object.entries(out.metrics).map(([k, v]) => [k, v.dataSync()[0]]));
          return out.loss;
        }, trainable);
        optimizer.applyGradients(grads);
        return { loss: value.dataSync()[0], metrics: metricValues };
      });
    },
    dispose() {
      optimizer.dispose();
    },
  };
}
