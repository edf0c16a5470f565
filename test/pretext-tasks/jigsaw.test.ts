import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { jigsawGeometry, jigsawTask, normalizePerTile, permutedTileRows } from '../../pretext-tasks/jigsaw.js';
import { maximalHammingPermutations } from '../../pretext-tasks/permutations.js';
import type { Backbone } from '../../src/backbones/types.js';
import { initEngine } from '../../src/engine/backend.js';
import { createRng } from '../../src/util/rng.js';

describe('jigsaw mechanics', () => {
  beforeAll(() => {
    initEngine({ quiet: true });
    expect(tf.getBackend()).toBe('tensorflow');
  });

  it('orders each image’s tile rows by its permutation', () => {
    const permutations = [
      [0, 1, 2, 3],
      [3, 2, 1, 0],
      [1, 0, 3, 2],
    ];
    // Image 0 uses permutation 1, image 1 permutation 2.
    expect(Array.from(permutedTileRows(permutations, Int32Array.from([1, 2]), 4))).toEqual([3, 2, 1, 0, 5, 4, 7, 6]);
  });

  it('the head sees the tiles’ features in the permuted order', () => {
    // A "backbone" whose feature is the tile's top-left pixel: tile t of image b holds 10 * b + t.
    const probe: Backbone = {
      config: { arch: 'resnet18', inputChannels: 1, widthMultiplier: 1, stem: 'small' },
      featureDim: 1,
      variables: () => [],
      dispose: () => {},
      features: (x) => tf.reshape(tf.slice(x, [0, 0, 0, 0], [-1, 1, 1, 1]), [-1, 1]) as tf.Tensor2D,
    };
    const options = jigsawTask.validate({ grid: 2, permutationCount: 24, normalizeTiles: false, hiddenDim: 4 });
    const seen: number[][] = [];
    const heads = {
      classifier: {
        outputDim: 24,
        variables: () => [],
        dispose: () => {},
        apply: (x: tf.Tensor2D) => {
          seen.push(...(x.arraySync() as number[][]));
          return tf.zeros([x.shape[0], 24]) as tf.Tensor2D;
        },
      },
    };
    const rng = createRng('order');
    tf.tidy(() => {
      const values = new Float32Array(2 * 4 * 2 * 2);
      for (let b = 0; b < 2; b++)
        for (let t = 0; t < 4; t++) values.fill(10 * b + t, (b * 4 + t) * 4, (b * 4 + t + 1) * 4);
      const view = tf.tensor(values, [2, 4, 2, 2, 1]);
      jigsawTask.step({ backbone: probe, heads, views: [view], training: true, rng }, options);
    });
    // Replay the step's draws to know which permutation each image got.
    const replay = createRng('order');
    const set = maximalHammingPermutations(4, 24, 0).permutations;
    for (let b = 0; b < 2; b++) {
      const permutation = set[replay.int(24)];
      expect(seen[b]).toEqual(permutation.map((t) => 10 * b + t));
    }
  });

  it('normalises every tile to zero mean and unit variance', () => {
    const [means, variances] = tf.tidy(() => {
      const tiles = tf.add(tf.mul(tf.randomNormal([3, 4, 4, 1], 0, 1, 'float32', 2), 5), 7) as tf.Tensor4D;
      const { mean, variance } = tf.moments(normalizePerTile(tiles), [1, 2, 3]);
      return [Array.from(mean.dataSync()), Array.from(variance.dataSync())];
    });
    for (const m of means) expect(Math.abs(m)).toBeLessThan(1e-5);
    for (const v of variances) expect(Math.abs(v - 1)).toBeLessThan(1e-3);
  });

  it('auto tile size is 64/75 of a cell', () => {
    const options = jigsawTask.validate({ grid: 2, permutationCount: 24 });
    expect(jigsawGeometry(options, 28)).toEqual({ cell: 14, tileSize: 12 });
    expect(jigsawGeometry(jigsawTask.defaults, 225)).toEqual({ cell: 75, tileSize: 64 });
  });
});
