import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { createBackbone } from '../../src/backbones/registry.js';
import { idxDataset } from '../../src/data/datasets/idx.js';
import { initEngine } from '../../src/engine/backend.js';
import { type FeatureSet, knnProbeAccuracy, linearProbe, probeBackbone } from '../../src/probes/index.js';
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
      { steps: 100, knn: { k: 20 } },
    );
    backbone.dispose();
    expect(result.featureDim).toBe(64);
    expect(result.knnK).toBe(20);
    expect(result.knnAccuracy).toBeGreaterThan(0.4);
    expect(result.testImages).toBe(200);
    // Ten classes: chance is 10%; even random convolutional features separate Fashion-MNIST far better.
    expect(result.testAccuracy).toBeGreaterThan(0.4);
  });

  it('scores a kNN probe as a plain loop of weighted cosine votes does', () => {
    const dim = 3;
    const rng = createRng('knn-probe');
    const make = (n: number): FeatureSet => {
      const features = Float32Array.from({ length: n * dim }, () => rng.uniform(-0.5, 0.5));
      const labels = Int32Array.from({ length: n }, (_, i) => i % 3);
      for (let i = 0; i < n; i++) features[i * dim + labels[i]] += 0.6; // each class leans to one axis
      return { features, labels, dim };
    };
    const train = make(40);
    const test = make(30);
    const k = 5;
    const t = 0.1;
    const cos = (a: Float32Array, i: number, b: Float32Array, j: number) => {
      let ab = 0,
        aa = 0,
        bb = 0;
      for (let d = 0; d < dim; d++) {
        ab += a[i * dim + d] * b[j * dim + d];
        aa += a[i * dim + d] ** 2;
        bb += b[j * dim + d] ** 2;
      }
      return ab / Math.sqrt(aa * bb);
    };
    let right = 0;
    for (let q = 0; q < 30; q++) {
      const sims = Array.from({ length: 40 }, (_, j) => ({ j, s: cos(test.features, q, train.features, j) }));
      sims.sort((a, b) => b.s - a.s);
      const votes = [0, 0, 0];
      for (const { j, s } of sims.slice(0, k)) votes[train.labels[j]] += Math.exp(s / t);
      if (votes.indexOf(Math.max(...votes)) === test.labels[q]) right++;
    }
    const before = tf.memory().numTensors;
    const accuracy = knnProbeAccuracy(train, test, { k, temperature: t });
    expect(tf.memory().numTensors).toBe(before);
    expect(accuracy).toBeCloseTo(right / 30, 10);
    expect(accuracy).toBeGreaterThan(1 / 3); // the classes lean apart: better than chance
  });
});
