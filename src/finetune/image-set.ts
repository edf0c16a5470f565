/**
 * Labeled sets for finetuning are small (tens to a few thousand images), so they
 * are decoded once into memory as float pixels in [0, 1], prepared as
 * pretraining prepares them (the shorter side resized to the input size, aspect
 * ratio kept, then the central square); batches are slices of that array,
 * augmented by the tensor executor (src/data/augment/tensor-batch.ts).
 */
import * as tf from '@tensorflow/tfjs';
import { runPipeline } from '../data/augment/pipeline.js';
import type { ImageSource, PipelineSpec } from '../data/types.js';
import { invalidOption, UsageError } from '../util/errors.js';
import { Progress } from '../util/progress.js';
import { createRng } from '../util/rng.js';

export interface ImageSet {
  /** [N, H, W, C] pixels in [0, 1], row-major. */
  pixels: Float32Array;
  count: number;
  height: number;
  width: number;
  channels: 1 | 3;
  /** Class per image, -1 = unlabeled. */
  labels: Int32Array;
  classNames: string[];
  /** Index of each image in its source (for reports). */
  sourceIndices: Int32Array;
  /** A human name per image (a path, or `file.idx#123`). */
  describe(i: number): string;
  /** Images of the source that could not be decoded (left out), with the reason. */
  skipped?: Array<{ index: number; path: string; reason: string }>;
}

export interface LoadImageSetOptions {
  /** Side of the square the images are prepared at (shorter side resized to it, then center-cropped). */
  size: number;
  channels: 1 | 3;
  /** Source indices to load (default: all). */
  indices?: Int32Array;
  /** Show a progress line on stderr. */
  progress?: boolean;
  /** Images decoded concurrently (default 8). */
  concurrency?: number;
}

/**
 * Decodes `source` (or the chosen indices) into memory at `size` x `size` x
 * `channels`: the shorter side resized to `size` (aspect ratio kept), then the
 * central square, as the evaluation view of pretraining does.
 */
export async function loadImageSet(source: ImageSource, options: LoadImageSetOptions): Promise<ImageSet> {
  const { size, channels } = options;
  if (!Number.isInteger(size) || size < 4) throw invalidOption('input.size', 'an integer >= 4', size);
  const indices = options.indices ?? Int32Array.from({ length: source.size }, (_, i) => i);
  const n = indices.length;
  const plane = size * size * channels;
  const prepare: PipelineSpec = [
    { op: 'resize', size },
    { op: 'centerCrop', size },
  ];
  const noDraws = createRng('prepare'); // the two steps draw nothing
  const pixels = new Float32Array(n * plane);
  const labels = new Int32Array(n).fill(-1);
  const progress = options.progress ? new Progress({ label: 'decode', total: n }) : undefined;
  const concurrency = options.concurrency ?? 8;
  let next = 0;
  const ok = new Uint8Array(n);
  const skipped: Array<{ index: number; path: string; reason: string }> = [];
  const worker = async () => {
    while (next < n) {
      const i = next++;
      let raw: Awaited<ReturnType<ImageSource['load']>>;
      try {
        raw = await source.load(indices[i], channels);
      } catch (e) {
        // A corrupt image is recorded with its reason and skipped.
        skipped.push({ index: indices[i], path: source.describe(indices[i]), reason: (e as Error).message });
        progress?.tick();
        continue;
      }
      if (raw.channels !== channels) {
        throw new UsageError(`${source.describe(indices[i])}: decoded ${raw.channels} channels, expected ${channels}`);
      }
      pixels.set(runPipeline(raw, prepare, noDraws).data, i * plane);
      if (source.labels) labels[i] = source.labels[indices[i]];
      ok[i] = 1;
      progress?.tick();
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
  progress?.finish();
  const set: ImageSet = {
    pixels,
    count: n,
    height: size,
    width: size,
    channels,
    labels,
    classNames: source.classNames?.slice() ?? [],
    sourceIndices: Int32Array.from(indices),
    describe: (i) => source.describe(indices[i]),
  };
  if (skipped.length === 0) return set;
  if (skipped.length === n)
    throw new UsageError(`none of the ${n} images could be decoded (first: ${skipped[0].path}: ${skipped[0].reason})`);
  const kept = Int32Array.from({ length: n }, (_, i) => i).filter((i) => ok[i] === 1);
  return { ...subsetImageSet(set, kept), skipped: skipped.sort((a, b) => a.index - b.index) };
}

/** An ImageSet over pixels already in memory (tests, generated data, IDX arrays). */
export function imageSetFromArrays(
  pixels: Float32Array,
  shape: [number, number, number, number],
  labels: Int32Array,
  classNames: string[],
  describe: (i: number) => string = (i) => `#${i}`,
): ImageSet {
  const [n, h, w, c] = shape;
  if (c !== 1 && c !== 3) throw invalidOption('channels', '1 or 3', c);
  if (pixels.length !== n * h * w * c) throw invalidOption('pixels', `${n * h * w * c} values`, pixels.length);
  if (labels.length !== n) throw invalidOption('labels', `${n} labels`, labels.length);
  return {
    pixels,
    count: n,
    height: h,
    width: w,
    channels: c,
    labels,
    classNames,
    sourceIndices: Int32Array.from({ length: n }, (_, i) => i),
    describe,
  };
}

/** The images at `indices` (positions in `set`) as a new set (pixels copied). */
export function subsetImageSet(set: ImageSet, indices: ArrayLike<number>): ImageSet {
  const plane = set.height * set.width * set.channels;
  const pixels = new Float32Array(indices.length * plane);
  const labels = new Int32Array(indices.length);
  const sourceIndices = new Int32Array(indices.length);
  const positions = Int32Array.from(indices as ArrayLike<number>);
  for (let i = 0; i < positions.length; i++) {
    const p = positions[i];
    if (p < 0 || p >= set.count) throw invalidOption(`indices[${i}]`, `a position in 0..${set.count - 1}`, p);
    pixels.set(set.pixels.subarray(p * plane, (p + 1) * plane), i * plane);
    labels[i] = set.labels[p];
    sourceIndices[i] = set.sourceIndices[p];
  }
  return {
    ...set,
    pixels,
    count: positions.length,
    labels,
    sourceIndices,
    describe: (i) => set.describe(positions[i]),
  };
}

/** The images of `a`, then those of `b` (same size, channels and classes), as a new set. */
export function concatImageSets(a: ImageSet, b: ImageSet): ImageSet {
  if (a.height !== b.height || a.width !== b.width || a.channels !== b.channels) {
    throw invalidOption(
      'images',
      `${a.height}x${a.width}x${a.channels} images`,
      `${b.height}x${b.width}x${b.channels}`,
    );
  }
  if (a.classNames.join('\n') !== b.classNames.join('\n'))
    throw invalidOption('classNames', a.classNames.join(', '), b.classNames.join(', '));
  const pixels = new Float32Array(a.pixels.length + b.pixels.length);
  pixels.set(a.pixels, 0);
  pixels.set(b.pixels, a.pixels.length);
  const labels = new Int32Array(a.count + b.count);
  labels.set(a.labels, 0);
  labels.set(b.labels, a.count);
  const sourceIndices = new Int32Array(a.count + b.count);
  sourceIndices.set(a.sourceIndices, 0);
  sourceIndices.set(b.sourceIndices, a.count);
  return {
    ...a,
    pixels,
    count: a.count + b.count,
    labels,
    sourceIndices,
    describe: (i) => (i < a.count ? a.describe(i) : b.describe(i - a.count)),
    skipped: undefined,
  };
}

/** The set with different labels (e.g. flipped for an experiment, or hidden). */
export function withLabels(set: ImageSet, labels: Int32Array): ImageSet {
  if (labels.length !== set.count) throw invalidOption('labels', `${set.count} labels`, labels.length);
  return { ...set, labels };
}

/** Pixels of `positions` as a tensor [B, H, W, C] in [0, 1]. */
export function batchPixels(set: ImageSet, positions: ArrayLike<number>): tf.Tensor4D {
  const plane = set.height * set.width * set.channels;
  const out = new Float32Array(positions.length * plane);
  for (let i = 0; i < positions.length; i++) {
    const p = positions[i];
    out.set(set.pixels.subarray(p * plane, (p + 1) * plane), i * plane);
  }
  return tf.tensor4d(out, [positions.length, set.height, set.width, set.channels]);
}
