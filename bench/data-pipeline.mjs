#!/usr/bin/env node
/**
 * Data pipeline throughput: decode + two-view SimCLR augmentation at 32 px and
 * 96 px from a folder of JPEGs (generated on first use), a rescan of that folder,
 * and, when the ResNet-18 backbone is built, the rate at which a SimCLR training
 * step consumes images at the same size (measured in the same run), plus the
 * data wait measured while training on the loader's batches.
 * Target: pipeline >= 3x training consumption; data wait < 5% of step time.
 *
 *   npm run build && node bench/data-pipeline.mjs [--images 384] [--batch 64] [--steps 3] [--workers N] [--no-train]
 *   node bench/data-pipeline.mjs --photos [--images 64]   # 96 px views from 1600x1200 JPEGs: default decodeSize vs full decode
 */
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = (p) => path.join(root, 'dist', p);
const data = await import(dist('src/data/index.js'));

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : fallback;
};
const imageCount = Number(option('images', '384'));
const batchSize = Number(option('batch', '64'));
const trainSteps = Number(option('steps', '3'));
const workers = option('workers', undefined) === undefined ? undefined : Number(option('workers'));
const load = () =>
  os
    .loadavg()
    .map((v) => v.toFixed(1))
    .join(' ');

/** Folder of `count` JPEG photos-like images (smooth gradients + noise) of side x height, made once. */
async function jpegFolder(side, count, height = side) {
  const dir = path.join(os.tmpdir(), `selfsup-bench-jpeg-${side}x${height}-${count}`);
  if (existsSync(dir) && readdirSync(dir).length === count) return dir;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const pixels = Buffer.alloc(side * height * 3);
  let state = 12345;
  for (let n = 0; n < count; n++) {
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < side; x++) {
        state = (state * 1103515245 + 12345) & 0x7fffffff;
        const i = (y * side + x) * 3;
        pixels[i] = (x * 255) / side + (state & 31);
        pixels[i + 1] = (y * 255) / height + ((state >> 5) & 31);
        pixels[i + 2] = ((n * 37) % 200) + ((state >> 10) & 31);
      }
    }
    await sharp(pixels, { raw: { width: side, height, channels: 3 } })
      .jpeg({ quality: 90 })
      .toFile(path.join(dir, `${String(n).padStart(5, '0')}.jpg`));
  }
  return dir;
}

async function pipelineRate(source, size, options = {}) {
  const loader = data.createLoader(source, {
    batchSize,
    views: [data.SIMCLR_PIPELINE(size, 3), data.SIMCLR_PIPELINE(size, 3)],
    channels: 3,
    seed: 1,
    epoch: options.epoch ?? 0,
    workers,
    prefetch: 4,
    cacheSize: options.cacheSize,
    decodeSize: options.decodeSize,
  });
  const start = performance.now();
  let images = 0;
  for await (const batch of loader) images += batch.indices.length;
  const seconds = (performance.now() - start) / 1000;
  return { imagesPerSecond: images / seconds, seconds, stats: loader.stats() };
}

// Training consumption: a SimCLR step = forward + backward of ResNet-18 on 2B views.
let train = null;
if (!args.includes('--no-train') && !args.includes('--photos') && existsSync(dist('src/backbones/index.js'))) {
  const tf = await import('@tensorflow/tfjs');
  const { initEngine } = await import(dist('src/engine/index.js'));
  const { createBackbone } = await import(dist('src/backbones/index.js'));
  const engine = initEngine();
  console.log(`engine ${engine.backend}`);
  const make = (size) => {
    const backbone = createBackbone('resnet18', { stem: size <= 64 ? 'small' : 'imagenet', seed: 1 });
    const trainable = backbone
      .variables()
      .filter((v) => v.trainable)
      .map((v) => v.variable);
    const optimizer = tf.train.momentum(0.01, 0.9);
    const step = (views) =>
      tf.tidy(() => {
        const x = tf.concat(views, 0);
        const { value, grads } = tf.variableGrads(() => tf.mean(tf.square(backbone.features(x, true))), trainable);
        optimizer.applyGradients(grads);
        return value.dataSync()[0];
      });
    const dispose = () => {
      optimizer.dispose();
      backbone.dispose();
    };
    return { step, dispose };
  };
  train = { tf, make };
}

console.log(`cpus ${os.cpus().length}, load average at start: ${load()}`);
if (args.includes('--photos')) {
  const dir = await jpegFolder(1600, imageCount, 1200);
  const source = await data.folderDataset(dir);
  const shrunk = await pipelineRate(source, 96);
  const full = await pipelineRate(source, 96, { decodeSize: 0 });
  console.log(
    `96 px from 1600x1200 JPEGs: default decodeSize (${data.defaultDecodeSize([data.SIMCLR_PIPELINE(96)])} px) ` +
      `${shrunk.imagesPerSecond.toFixed(1)} img/s, full-resolution decode ${full.imagesPerSecond.toFixed(1)} img/s ` +
      `(x${(shrunk.imagesPerSecond / full.imagesPerSecond).toFixed(1)})  [load ${load()}]`,
  );
  data.shutdownAugmentPool();
  process.exit(0);
}
const results = [];
for (const size of [32, 96]) {
  const side = size === 32 ? 64 : 160;
  const dir = await jpegFolder(side, imageCount);
  const manifest = path.join(os.tmpdir(), `selfsup-bench-manifest-${side}.arrow`);
  const scan = await data.scanFolder(dir, { out: manifest, previous: null });
  const rescan = await data.scanFolder(dir, { out: manifest });
  const source = data.manifestDataset(manifest);
  const plain = await pipelineRate(source, size);
  await pipelineRate(source, size, { cacheSize: side }); // fills the cache
  const cached = await pipelineRate(source, size, { cacheSize: side, epoch: 1 });
  const line = {
    size,
    jpeg: `${side}x${side}`,
    images: imageCount,
    scanFilesPerSecond: scan.files / scan.seconds,
    rescanFilesPerSecond: rescan.files / rescan.seconds,
    rescanOpened: rescan.opened,
    pipelineImagesPerSecond: plain.imagesPerSecond,
    cachedImagesPerSecond: cached.imagesPerSecond,
    workers: plain.stats.workers,
    decodeMsPerImage: plain.stats.decodeMs / imageCount,
    augmentMsPerImage: plain.stats.augmentMs / imageCount,
  };
  if (train) {
    const { tf, make } = train;
    const model = make(size);
    const views = [tf.randomNormal([batchSize, size, size, 3]), tf.randomNormal([batchSize, size, size, 3])];
    model.step(views); // warm-up
    const start = performance.now();
    for (let i = 0; i < trainSteps; i++) model.step(views);
    const stepSeconds = (performance.now() - start) / 1000 / trainSteps;
    tf.dispose(views);
    line.trainImagesPerSecond = batchSize / stepSeconds;
    line.ratio = line.pipelineImagesPerSecond / line.trainImagesPerSecond;
    // Training fed by the loader: how long did the step wait for data?
    const loader = data.createLoader(source, {
      batchSize,
      views: [data.SIMCLR_PIPELINE(size, 3), data.SIMCLR_PIPELINE(size, 3)],
      channels: 3,
      seed: 1,
      epoch: 2,
      workers,
      dropLast: true,
    });
    const fedStart = performance.now();
    let steps = 0;
    for await (const batch of loader) {
      const tensors = batch.views.map((v) => tf.tensor4d(v.data, v.shape));
      model.step(tensors);
      tf.dispose(tensors);
      if (++steps >= trainSteps) break;
    }
    const fedSeconds = (performance.now() - fedStart) / 1000;
    line.fedWaitFraction = loader.stats().waitMs / 1000 / fedSeconds;
    model.dispose();
  }
  line.loadAverage = load();
  results.push(line);
  const fmt = (x) => x.toFixed(1);
  console.log(
    `${size} px from ${line.jpeg} JPEGs: decode + 2-view SimCLR ${fmt(line.pipelineImagesPerSecond)} img/s ` +
      `(cached decode ${fmt(line.cachedImagesPerSecond)} img/s; ${line.workers} augment worker(s); ` +
      `decode ${line.decodeMsPerImage.toFixed(2)} ms/img wall, augment ${line.augmentMsPerImage.toFixed(2)} ms/img); ` +
      `scan ${fmt(line.scanFilesPerSecond)} files/s, rescan ${fmt(line.rescanFilesPerSecond)} files/s (${line.rescanOpened} reopened)` +
      (train
        ? `; ResNet-18 SimCLR step consumes ${fmt(line.trainImagesPerSecond)} img/s -> ratio ${line.ratio.toFixed(2)} (target >= 3); ` +
          `data wait while training ${(100 * line.fedWaitFraction).toFixed(1)}% of time (target < 5%)`
        : '; training consumption not measured (no backbone build or --no-train): target is 3x that rate') +
      `  [load ${line.loadAverage}]`,
  );
}
data.shutdownAugmentPool();
if (args.includes('--json')) console.log(JSON.stringify(results, null, 2));
