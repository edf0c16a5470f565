/**
 * The batch loader: one epoch of batches from an ImageSource.
 *
 * Decoding runs on sharp's thread pool (libuv), augmentation on worker threads
 * (or in-process when none are available), `prefetch` batches ahead. The order is
 * rng(seed).derive('epoch', e).permutation and every image's augmentation stream
 * is rng(seed).derive('epoch', e, 'sample', index, 'view', v), so a batch is the
 * same whatever the worker count, prefetch depth, or resume point.
 */
import os from 'node:os';
import { assertInteger, invalidOption } from '../util/errors.js';
import { createRng } from '../util/rng.js';
import { resizeShorter } from './augment/geometry.js';
import { validatePipeline } from './augment/pipeline.js';
import { type AugmentJob, type AugmentResult, runAugmentJob } from './augment-batch.js';
import { isResizable } from './datasets/file-list.js';
import type { Batch, ImageSource, LoaderOptions, LoaderStats, PipelineSpec, RawImage } from './types.js';
import { augmentWorkersAvailable, runOnPool } from './worker-pool.js';

export interface BadImage {
  index: number;
  /** The source's name for it (path or file#index). */
  name: string;
  reason: string;
}

export interface DataLoaderStats extends LoaderStats {
  /** Milliseconds in decoding (wall time of the decode phase per batch, summed). */
  decodeMs: number;
  /** Milliseconds in augmentation (summed over workers). */
  augmentMs: number;
  /** Worker threads used for augmentation (0 = in-process). */
  workers: number;
  cacheHits: number;
  /** Images that failed to load; each was replaced by the next good image in the epoch order. */
  bad: BadImage[];
}

export interface DataLoaderOptions extends LoaderOptions {
  /**
   * Decode images with their shorter side shrunk to at most this many px
   * (JPEG/WebP shrink on load: large photos decode several times faster and a
   * batch of them fits in memory). 0 = full resolution. Default: cacheSize when
   * set, else 4x the largest size in the view pipelines, at least 256.
   */
  decodeSize?: number;
  /** Called once per image that fails to load (it is replaced, never fatal). */
  onBadImage?: (bad: BadImage) => void;
}

export interface DataLoader extends AsyncIterable<Batch> {
  /** Batches this epoch yields (after startBatch). */
  readonly batchCount: number;
  /** Per-image shape of each view: [H, W, C] or [T, h, w, C]. */
  readonly viewShapes: number[][];
  stats(): DataLoaderStats;
  /** Stops preparing batches (an early stop); iteration ends after the batch in hand. */
  close(): void;
}

// Decoded images kept across epochs (and loaders) per source, when cacheSize is set.
const caches = new WeakMap<ImageSource, Map<string, RawImage>>();
// Images known to fail, so later epochs skip them without decoding again.
const knownBad = new WeakMap<ImageSource, Map<number, string>>();

function toUint8(image: RawImage, size: number): RawImage {
  const float = resizeShorter(image, size);
  const data = new Uint8Array(float.data.length);
  for (let i = 0; i < data.length; i++) data[i] = Math.round(float.data[i] * 255);
  return { data, width: float.width, height: float.height, channels: image.channels };
}

/** 4x the largest side any view pipeline produces or resizes to, at least 256 px. */
export function defaultDecodeSize(views: PipelineSpec[]): number {
  let largest = 0;
  for (const spec of views) {
    for (const step of spec) {
      if ('size' in step) largest = Math.max(largest, step.size);
      if (step.op === 'jigsaw') largest = Math.max(largest, step.grid * step.tileSize);
    }
  }
  return Math.max(256, 4 * largest);
}

/** Epoch order: the subset (or all indices), shuffled by the epoch's stream unless shuffle is false. */
export function epochOrder(source: ImageSource, options: LoaderOptions): Int32Array {
  const base = options.subset ? Int32Array.from(options.subset) : Int32Array.from({ length: source.size }, (_, i) => i);
  if (options.shuffle === false) return base;
  const permutation = createRng(options.seed).derive('epoch', options.epoch).permutation(base.length);
  return permutation.map((p) => base[p]);
}

function validateOptions(source: ImageSource, options: DataLoaderOptions): number[][] {
  assertInteger('loader.batchSize', options.batchSize, 1, 1 << 20);
  assertInteger('loader.epoch', options.epoch, 0);
  if (options.channels !== 1 && options.channels !== 3)
    throw invalidOption('loader.channels', '1 or 3', options.channels);
  if (typeof options.seed !== 'string' && typeof options.seed !== 'number') {
    throw invalidOption('loader.seed', 'a string or number', options.seed);
  }
  if (!Array.isArray(options.views) || options.views.length === 0) {
    throw invalidOption('loader.views', 'a non-empty array of pipelines (one per view)', options.views);
  }
  if (options.startBatch !== undefined) assertInteger('loader.startBatch', options.startBatch, 0);
  if (options.workers !== undefined) assertInteger('loader.workers', options.workers, 0, 64);
  if (options.prefetch !== undefined) assertInteger('loader.prefetch', options.prefetch, 1, 64);
  if (options.cacheSize !== undefined) assertInteger('loader.cacheSize', options.cacheSize, 1, 8192);
  if (options.decodeSize !== undefined) assertInteger('loader.decodeSize', options.decodeSize, 0, 65536);
  if (options.subset) {
    for (const i of options.subset) {
      if (!Number.isInteger(i) || i < 0 || i >= source.size) {
        throw invalidOption('loader.subset', `indices in 0..${source.size - 1}`, i);
      }
    }
  }
  return options.views.map((spec, v) => validatePipeline(spec, options.channels, `views[${v}]`));
}

/** Creates the loader for one epoch; iterate it with `for await`. */
export function createLoader(source: ImageSource, options: DataLoaderOptions): DataLoader {
  const viewShapes = validateOptions(source, options);
  const order = epochOrder(source, options);
  const batchSize = options.batchSize;
  const total = options.dropLast ? Math.floor(order.length / batchSize) : Math.ceil(order.length / batchSize);
  const startBatch = Math.min(options.startBatch ?? 0, total);
  const requested = options.workers ?? Math.max(1, os.availableParallelism() - 1);
  const workers = augmentWorkersAvailable() ? requested : 0;
  const prefetch = options.prefetch ?? 2;
  const seed = String(options.seed);
  const stats: DataLoaderStats = {
    batches: 0,
    images: 0,
    waitMs: 0,
    produceMs: 0,
    decodeMs: 0,
    augmentMs: 0,
    workers,
    cacheHits: 0,
    bad: [],
  };
  const shrinkTo = options.cacheSize ?? options.decodeSize ?? defaultDecodeSize(options.views);
  let cache: Map<string, RawImage> | undefined;
  if (options.cacheSize) {
    cache = caches.get(source);
    if (!cache) {
      cache = new Map();
      caches.set(source, cache);
    }
  }
  const bad = knownBad.get(source) ?? new Map<number, string>();
  knownBad.set(source, bad);

  async function loadOne(index: number): Promise<{ image: RawImage; cached: boolean }> {
    const key = `${options.channels}:${shrinkTo}:${index}`;
    const hit = cache?.get(key);
    if (hit) {
      stats.cacheHits++;
      return { image: hit, cached: true };
    }
    let image: RawImage;
    if (shrinkTo && isResizable(source)) {
      image = await source.loadResized(index, options.channels, shrinkTo);
    } else {
      image = await source.load(index, options.channels);
      if (shrinkTo && Math.min(image.width, image.height) > shrinkTo) image = toUint8(image, shrinkTo);
    }
    if (cache) cache.set(key, image);
    return { image, cached: Boolean(cache) };
  }

  /** Loads the image at epoch position `position`, replacing failures by the next good one in order. */
  async function loadAt(position: number): Promise<{ index: number; image: RawImage; cached: boolean }> {
    for (let step = 0; step < order.length; step++) {
      const index = order[(position + step) % order.length];
      if (bad.has(index)) continue;
      try {
        return { index, ...(await loadOne(index)) };
      } catch (e) {
        if (bad.has(index)) continue; // a concurrent load already reported it
        const entry = { index, name: source.describe(index), reason: (e as Error).message };
        bad.set(index, entry.reason);
        stats.bad.push(entry);
        options.onBadImage?.(entry);
      }
    }
    throw new Error(`no image of ${order.length} could be loaded (first failure: ${stats.bad[0]?.reason})`);
  }

  async function produce(batch: number): Promise<Batch> {
    const started = performance.now();
    const first = batch * batchSize;
    const last = Math.min(first + batchSize, order.length);
    const loaded = await Promise.all(Array.from({ length: last - first }, (_, i) => loadAt(first + i)));
    const decoded = performance.now();
    stats.decodeMs += decoded - started;
    const job: AugmentJob = {
      seed,
      epoch: options.epoch,
      views: options.views,
      shapes: viewShapes,
      indices: loaded.map((l) => l.index),
      images: loaded.map((l) => l.image),
    };
    let result: AugmentResult;
    if (workers > 0) {
      // Freshly decoded buffers move to the worker; cached ones are copied.
      const transfer = loaded.filter((l) => !l.cached).map((l) => l.image.data.buffer as ArrayBuffer);
      result = await runOnPool(workers, job, [...new Set(transfer)]);
    } else {
      result = runAugmentJob(job);
    }
    stats.augmentMs += result.milliseconds;
    stats.produceMs += decoded - started + result.milliseconds;
    const indices = Int32Array.from(job.indices);
    const out: Batch = {
      indices,
      views: result.views.map((data, v) => ({ data, shape: [indices.length, ...viewShapes[v]] })),
    };
    if (source.labels) out.labels = indices.map((i) => source.labels![i]);
    return out;
  }

  let closed = false;

  async function* iterate(): AsyncGenerator<Batch> {
    const queue: Array<Promise<Batch>> = [];
    let next = startBatch;
    const fill = (): void => {
      while (!closed && queue.length < prefetch && next < total) {
        const p = produce(next++);
        p.catch(() => undefined); // surfaced when awaited
        queue.push(p);
      }
    };
    fill();
    while (queue.length > 0 && !closed) {
      const waitStart = performance.now();
      const batch = await queue.shift()!;
      stats.waitMs += performance.now() - waitStart;
      fill();
      stats.batches++;
      stats.images += batch.indices.length;
      yield batch;
    }
  }

  return {
    batchCount: total - startBatch,
    viewShapes,
    stats: () => ({ ...stats, bad: [...stats.bad] }),
    close: () => {
      closed = true;
    },
    [Symbol.asyncIterator]: iterate,
  };
}
