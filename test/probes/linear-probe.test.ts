import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { createBackbone } from '../../src/backbones/registry.js';
import { idxDataset } from '../../src/data/datasets/idx.js';
import { initEngine } from '../../src/engine/backend.js';
import { type FeatureSet, linearProbe, probeBackbone } from '../../src/probes/index.js';
import { createRng, type Rng } from '../../src/util/rng.js';

/** Gaussian clusters around seeded class centres: [n, dim] features, labels in [0, classes). */
function clusters(n: number, dim: number, classes: number, spread: number, centres: number[][], rng: Rng): FeatureSet {
  const features = new Float32Array(n * dim);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    labels[i] = i % classes;
    for (let d = 0; d < dim; d++) features[i * dim + d] = centres[labels[i]][d] + spread * rng.normal();
  }
  return { features, labels, dim };
}

describe('linear probe', () => {
  beforeAll(() => {
    initEngine({ quiet: true });
    expect(tf.getBackend()).toBe('tensorflow');
  });

  it('separates separable features, not noise, and leaves no tensors', () => {
    const rng = createRng('probe');
    const dim = 8;
    const classes = 3;
    const centres = Array.from({ length: classes }, () => Array.from({ length: dim }, () => 3 * rng.normal()));
    const before = tf.memory().numTensors;
    const easy = linearProbe(
      clusters(300, dim, classes, 0.5, centres, rng),
      clusters(150, dim, classes, 0.5, centres, rng),
      classes,
      { steps: 100 },
    );
    expect(easy.testAccuracy).toBeGreaterThan(0.95);
    expect(easy.trainImages).toBe(300);
    // Pure noise with random labels: nothing to learn for the test set.
    const noise = (n: number): FeatureSet => {
      const set = clusters(
        n,
        dim,
        classes,
        1,
        [new Array(dim).fill(0), new Array(dim).fill(0), new Array(dim).fill(0)],
        rng,
      );
      for (let i = 0; i < n; i++) set.labels[i] = rng.int(classes);
      return set;
    };
    const hard = linearProbe(noise(300), noise(600), classes, { steps: 100 });
    expect(hard.testAccuracy).toBeLessThan(0.5);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('probes a backbone on the shipped Fashion-MNIST IDX sample above chance', async () => {
    const train = idxDataset(
      'data/fashion-mnist-demo/idx/train-images-idx3-ubyte.gz',
      'data/fashion-mnist-demo/idx/train-labels-idx1-ubyte.gz',
    );
    const test = idxDataset(
      'data/fashion-mnist-demo/idx/t10k-images-idx3-ubyte.gz',
      'data/fashion-mnist-demo/idx/t10k-labels-idx1-ubyte.gz',
    );
    const backbone = createBackbone('resnet18', { widthMultiplier: 0.125, stem: 'small', inputChannels: 1, seed: 3 });
    const result = await probeBackbone(
      backbone,
      { source: train, indices: Int32Array.from({ length: 300 }, (_, i) => i) },
      { source: test, indices: Int32Array.from({ length: 200 }, (_, i) => i) },
      { size: 28, channels: 1, mean: [0.286], std: [0.353] },
      { steps: 100 },
    );
    backbone.dispose();
    expect(result.featureDim).toBe(64);
    expect(result.testImages).toBe(200);
    // Ten classes: chance is 10%; even random convolutional features separate Fashion-MNIST far better.
    expect(result.testAccuracy).toBeGreaterThan(0.4);
  });
});
