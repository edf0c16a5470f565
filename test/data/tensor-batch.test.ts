/**
 * Conformance of the two executors of the augmentation specs: the per-image
 * pipeline (runPipeline) and the batch-of-tensors executor (augmentTensorBatch)
 * run on the same images with the same seeded draws (image i: the stream
 * rng.derive('sample', i)) and must agree within TOLERANCE on every pixel.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { adjustHue } from '../../src/data/augment/color.js';
import { affineSampling, warpAffine } from '../../src/data/augment/geometry.js';
import type { FloatImage } from '../../src/data/augment/image.js';
import { runPipeline, validatePipeline } from '../../src/data/augment/pipeline.js';
import { strongView, weakView } from '../../src/data/augment/presets.js';
import { augmentTensorBatch } from '../../src/data/augment/tensor-batch.js';
import type { PipelineSpec } from '../../src/data/types.js';
import { initEngine } from '../../src/engine/backend.js';
import { createRng } from '../../src/util/rng.js';

/** Largest allowed |per-image - batch| per value (float32 sums in a different order). */
const TOLERANCE = 1e-4;

/** A batch of smooth-ish random images in [0, 1]: a colour gradient plus noise, so colour ops have work to do. */
function images(count: number, height: number, width: number, channels: 1 | 3, seed: number): FloatImage[] {
  const rng = createRng(seed);
  return Array.from({ length: count }, () => {
    const data = new Float32Array(height * width * channels);
    const tint = Array.from({ length: channels }, () => rng.uniform(0.2, 0.8));
    for (let y = 0; y < height; y++)
      for (let x = 0; x < width; x++)
        for (let c = 0; c < channels; c++) {
          const v = tint[c] + 0.3 * Math.sin((x + 1) * (c + 1) * 0.4 + y * 0.3) + 0.15 * rng.normal();
          data[(y * width + x) * channels + c] = Math.min(1, Math.max(0, v));
        }
    return { data, width, height, channels };
  });
}

/** Both executors on `batch` with seed `seed`; returns the largest difference and the output shape. */
function compare(batch: FloatImage[], spec: PipelineSpec, seed: number): { difference: number; shape: number[] } {
  const root = createRng(seed);
  const perImage = batch.map((image, i) => runPipeline(image, spec, root.derive('sample', i)));
  const { height, width, channels } = batch[0];
  const x = tf.tensor4d(Float32Array.from(batch.flatMap((image) => Array.from(image.data))), [
    batch.length,
    height,
    width,
    channels,
  ]);
  const y = augmentTensorBatch(x, spec, createRng(seed));
  const values = y.dataSync();
  const shape = y.shape.slice(1);
  tf.dispose([x, y]);
  expect(shape).toEqual(perImage[0].shape);
  let difference = 0;
  perImage.forEach((view, i) => {
    for (let j = 0; j < view.data.length; j++) {
      difference = Math.max(difference, Math.abs(view.data[j] - values[i * view.data.length + j]));
    }
  });
  return { difference, shape };
}

const rgb = images(6, 20, 15, 3, 1);
const gray = images(6, 16, 16, 1, 2);
const square = images(6, 14, 14, 3, 3);

const cases: Array<[string, FloatImage[], PipelineSpec]> = [
  ['resize down, aspect kept', rgb, [{ op: 'resize', size: 9 }]],
  ['resize up, aspect kept', gray, [{ op: 'resize', size: 23 }]],
  [
    'resize + centerCrop (the evaluation view)',
    rgb,
    [
      { op: 'resize', size: 12 },
      { op: 'centerCrop', size: 12 },
    ],
  ],
  ['centerCrop larger than the image (zero padding)', gray, [{ op: 'centerCrop', size: 19 }]],
  ['randomResizedCrop', rgb, [{ op: 'randomResizedCrop', size: 11, scale: [0.2, 1] }]],
  [
    'randomResizedCrop with no fitting box (central fallback)',
    rgb,
    [{ op: 'randomResizedCrop', size: 8, scale: [1, 1], ratio: [3, 4] }],
  ],
  [
    'flips',
    rgb,
    [
      { op: 'horizontalFlip', p: 0.5 },
      { op: 'verticalFlip', p: 0.5 },
    ],
  ],
  [
    'colour jitter with hue',
    rgb,
    [{ op: 'colorJitter', p: 0.8, brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.1 }],
  ],
  ['strong hue only', rgb, [{ op: 'colorJitter', p: 1, hue: 0.5 }]],
  [
    'colour jitter on 1 channel',
    gray,
    [{ op: 'colorJitter', p: 1, brightness: 0.5, contrast: 0.5, saturation: 0.5, hue: 0.2 }],
  ],
  ['grayscale', rgb, [{ op: 'randomGrayscale', p: 0.5 }]],
  ['gaussian blur, default kernel', rgb, [{ op: 'gaussianBlur', p: 0.5, sigma: [0.1, 2] }]],
  ['gaussian blur, wide kernel', gray, [{ op: 'gaussianBlur', p: 1, sigma: [1, 3], kernelSize: 9 }]],
  ['solarize', rgb, [{ op: 'solarize', p: 0.5, threshold: 0.5 }]],
  ['random erasing', rgb, [{ op: 'randomErasing', p: 0.7, scale: [0.05, 0.3], value: 0.25 }]],
  ['rotate90', square, [{ op: 'rotate90' }]],
  [
    'randomAffine, every key',
    rgb,
    [{ op: 'randomAffine', p: 0.7, degrees: 30, translate: [0.1, 0.2], scale: [0.8, 1.2], shear: 15, fill: 0.3 }],
  ],
  ['randomAffine, rotation only, 1 channel', gray, [{ op: 'randomAffine', degrees: 180 }]],
  ['randomCrop with padding and fill', rgb, [{ op: 'randomCrop', size: 15, padding: 4, fill: 0.5 }]],
  ['randomCrop without padding (a plain crop)', gray, [{ op: 'randomCrop', size: 11 }]],
  [
    'resize + randomCrop + flip (the CIFAR view)',
    rgb,
    [
      { op: 'resize', size: 12 },
      { op: 'randomCrop', size: 12, padding: 4 },
      { op: 'horizontalFlip', p: 0.5 },
    ],
  ],
  ['normalize, one value for all channels', rgb, [{ op: 'normalize', mean: [0.5], std: [0.25] }]],
  ['FixMatch weak view', rgb, weakView(12, [0.4, 0.5, 0.6], [0.2, 0.25, 0.3])],
  ['FixMatch strong view', rgb, strongView(12, [0.4, 0.5, 0.6], [0.2, 0.25, 0.3])],
  ['FixMatch strong view, 1 channel', gray, strongView(12, [0.3], [0.3])],
];

describe('tensor executor vs per-image executor', () => {
  beforeAll(() => {
    expect(initEngine({ quiet: true }).backend).toBe('tensorflow');
  });

  it.each(cases)('%s: agree within 1e-4 over several seeds', (_name, batch, spec) => {
    for (const seed of [1, 2, 3]) expect(compare(batch, spec, seed).difference).toBeLessThan(TOLERANCE);
  });

  it('randomCrop picks pixels: the two executors agree exactly, and too small an image is an error in both', () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      expect(compare(rgb, [{ op: 'randomCrop', size: 17, padding: 3, fill: 0.25 }], seed).difference).toBe(0);
      expect(compare(square, [{ op: 'randomCrop', size: 14, padding: 2 }], seed).difference).toBe(0);
    }
    const message = 'randomCrop: a 15x20 image padded by 1 px is 17x22, smaller than the 18x18 crop';
    expect(() => compare(rgb, [{ op: 'randomCrop', size: 18, padding: 1 }], 1)).toThrow(message);
    const x = tf.zeros([2, 20, 15, 3]) as tf.Tensor4D;
    const before = tf.memory().numTensors;
    expect(() => augmentTensorBatch(x, [{ op: 'randomCrop', size: 18, padding: 1 }], createRng(1))).toThrow(message);
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
  });

  it('randomAffine: no motion keeps the image, a quarter turn moves pixels as rotate90, a shift brings in the fill', () => {
    const still = [{ op: 'randomAffine', degrees: 0 }] as PipelineSpec;
    const kept = runPipeline(square[0], still, createRng(1));
    expect(Array.from(kept.data)).toEqual(Array.from(square[0].data));
    expect(compare(square, still, 1).difference).toBe(0);
    // 90 degrees exactly (degrees 90 draws in [-90, 90]: use the sampling itself for the exact angle).
    const quarter = affineSampling(14, 14, { angle: 90, tx: 0, ty: 0, scale: 1, shear: 0 });
    const turned = warpAffine(square[0], quarter, 0);
    const counter = runPipeline(square[0], [{ op: 'rotate90', k: 1 }], createRng(1));
    const clockwise = runPipeline(square[0], [{ op: 'rotate90', k: 3 }], createRng(1));
    const distance = (a: ArrayLike<number>, b: ArrayLike<number>) =>
      Math.max(...Array.from(a, (v, i) => Math.abs(v - b[i])));
    // One of the two directions, to float rounding (the weights are exact 0/1 up to cos(90 deg) ~ 6e-17).
    expect(Math.min(distance(turned.data, counter.data), distance(turned.data, clockwise.data))).toBeLessThan(1e-5);
    // A shift right by 3 px: the first 3 columns are the fill, the rest the image's columns moved.
    const shifted = warpAffine(gray[0], affineSampling(16, 16, { angle: 0, tx: 3, ty: 0, scale: 1, shear: 0 }), 0.25);
    for (let y = 0; y < 16; y++) {
      for (let x = 0; x < 16; x++) {
        const want = x < 3 ? 0.25 : gray[0].data[y * 16 + x - 3];
        expect(shifted.data[y * 16 + x]).toBeCloseTo(want, 6);
      }
    }
    // Validation names the step and key.
    expect(() => validatePipeline([{ op: 'randomAffine' }, { op: 'centerCrop', size: 8 }], 3, 'view')).toThrow(
      /view\[0\]\.degrees/,
    );
    expect(() =>
      validatePipeline(
        [
          { op: 'randomAffine', degrees: 10, translate: [0.1] },
          { op: 'centerCrop', size: 8 },
        ],
        3,
        'view',
      ),
    ).toThrow(/view\[0\]\.translate/);
  });

  it('resize keeps the aspect ratio (no squashing to a square)', () => {
    expect(compare(rgb, [{ op: 'resize', size: 9 }], 1).shape).toEqual([12, 9, 3]);
  });

  it('hue changes colours: a quarter turn maps pure red to chartreuse-green in both executors', () => {
    const red: FloatImage = { data: Float32Array.from([1, 0, 0, 0.5, 0.5, 0.5]), width: 2, height: 1, channels: 3 };
    adjustHue(red, 0.25);
    // Hue 0 + 90 degrees: (0.5, 1, 0); gray pixels keep their value.
    expect(Array.from(red.data)).toEqual([0.5, 1, 0, 0.5, 0.5, 0.5]);
    const { difference } = compare(
      [{ data: Float32Array.from([1, 0, 0, 0.5, 0.5, 0.5]), width: 2, height: 1, channels: 3 }],
      [{ op: 'colorJitter', p: 1, hue: 0.5 }],
      4,
    );
    expect(difference).toBeLessThan(TOLERANCE);
  });

  it('is reproducible, differs for another seed, and leaves no tensors behind', () => {
    const x = tf.tensor4d(Float32Array.from(rgb.flatMap((i) => Array.from(i.data))), [6, 20, 15, 3]);
    const spec = strongView(12, [0.5], [0.25]);
    const before = tf.memory().numTensors;
    const run = (seed: number) => {
      const y = augmentTensorBatch(x, spec, createRng(seed));
      const values = Array.from(y.dataSync());
      y.dispose();
      return values;
    };
    const a = run(7);
    expect(run(7)).toEqual(a);
    expect(run(8)).not.toEqual(a);
    expect(tf.memory().numTensors).toBe(before);
    expect(() => augmentTensorBatch(x, [{ op: 'jigsaw', grid: 2, tileSize: 4 }], createRng(1))).toThrow(/jigsaw/);
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
  });
});
