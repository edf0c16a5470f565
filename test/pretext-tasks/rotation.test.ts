import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { rotate90, rotateBatch } from '../../pretext-tasks/rotation.js';
import { initEngine } from '../../src/engine/backend.js';

/**
 * A 3x3 single-channel image with distinct pixels:
 *   1 2 3
 *   4 5 6
 *   7 8 9
 * Rotated 90 degrees counterclockwise (np.rot90 / torch.rot90 with k = 1):
 *   3 6 9
 *   2 5 8
 *   1 4 7
 */
const IMAGE = [
  [1, 2, 3],
  [4, 5, 6],
  [7, 8, 9],
];
const EXPECTED: Record<number, number[][]> = {
  0: IMAGE,
  1: [
    [3, 6, 9],
    [2, 5, 8],
    [1, 4, 7],
  ],
  2: [
    [9, 8, 7],
    [6, 5, 4],
    [3, 2, 1],
  ],
  3: [
    [7, 4, 1],
    [8, 5, 2],
    [9, 6, 3],
  ],
};

function imageTensor(pixels: number[][], channels = 1): tf.Tensor4D {
  const values = pixels.flatMap((row) => row.flatMap((v) => Array.from({ length: channels }, (_, c) => v + 10 * c)));
  return tf.tensor4d(values, [1, pixels.length, pixels[0].length, channels]);
}

function channel(t: tf.Tensor, c: number, channels: number): number[][] {
  const [, h, w] = t.shape;
  const data = t.dataSync();
  return Array.from({ length: h }, (_, y) => Array.from({ length: w }, (_, x) => data[(y * w + x) * channels + c]));
}

describe('rotation on tensors', () => {
  beforeAll(() => {
    initEngine({ quiet: true });
    expect(tf.getBackend()).toBe('tensorflow');
  });

  it('rotates an asymmetric image counterclockwise by k * 90 degrees, pixel by pixel', () => {
    for (const k of [0, 1, 2, 3]) {
      const got = tf.tidy(() => channel(rotate90(imageTensor(IMAGE), k), 0, 1));
      expect(got).toEqual(EXPECTED[k]);
    }
    // k wraps modulo 4, and four quarter turns give the image back.
    expect(tf.tidy(() => channel(rotate90(imageTensor(IMAGE), 5), 0, 1))).toEqual(EXPECTED[1]);
    expect(
      tf.tidy(() => channel(rotate90(rotate90(rotate90(rotate90(imageTensor(IMAGE), 1), 1), 1), 1), 0, 1)),
    ).toEqual(IMAGE);
  });

  it('keeps the channels of each pixel together', () => {
    const got = tf.tidy(() => {
      const r = rotate90(imageTensor(IMAGE, 3), 1);
      return [0, 1, 2].map((c) => channel(r, c, 3));
    });
    for (const c of [0, 1, 2]) expect(got[c]).toEqual(EXPECTED[1].map((row) => row.map((v) => v + 10 * c)));
  });

  it("'all-four' stacks the four rotations with labels 0..3, one rotation per image otherwise", () => {
    tf.tidy(() => {
      const second = IMAGE.map((row) => row.map((v) => v * 100));
      const batch = tf.concat([imageTensor(IMAGE), imageTensor(second)]) as tf.Tensor4D; // [2, 3, 3, 1]
      const all = rotateBatch(batch, 'all-four');
      expect(all.inputs.shape).toEqual([8, 3, 3, 1]);
      expect(Array.from(all.labels.dataSync())).toEqual([0, 0, 1, 1, 2, 2, 3, 3]);
      expect(channel(tf.slice(all.inputs, [4, 0, 0, 0], [1, 3, 3, 1]), 0, 1)).toEqual(EXPECTED[2]);
      expect(channel(tf.slice(all.inputs, [3, 0, 0, 0], [1, 3, 3, 1]), 0, 1)).toEqual(
        EXPECTED[1].map((row) => row.map((v) => v * 100)),
      );

      const one = rotateBatch(batch, Int32Array.from([3, 1]));
      expect(one.inputs.shape).toEqual([2, 3, 3, 1]);
      expect(Array.from(one.labels.dataSync())).toEqual([3, 1]);
      expect(channel(tf.slice(one.inputs, [0, 0, 0, 0], [1, 3, 3, 1]), 0, 1)).toEqual(EXPECTED[3]);
      expect(channel(tf.slice(one.inputs, [1, 0, 0, 0], [1, 3, 3, 1]), 0, 1)).toEqual(
        EXPECTED[1].map((row) => row.map((v) => v * 100)),
      );
    });
  });

  it('rejects non-square images', () => {
    tf.tidy(() => {
      expect(() => rotate90(tf.zeros([1, 2, 3, 1]) as tf.Tensor4D, 1)).toThrow('rotate90 needs square images, got 2x3');
    });
  });
});
