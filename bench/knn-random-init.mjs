#!/usr/bin/env node
/**
 * The kNN monitor's accuracy for a randomly initialised backbone, exactly as a
 * run's recipe builds it (same seed stream, same validation split): the baseline
 * for the `knnAccuracy` column of that run's metrics.arrow.
 *
 *   npm run build && node bench/knn-random-init.mjs <run folder> <labelled validation data>
 */
import { getTask } from '../dist/pretext-tasks/registry.js';
import { evalView } from '../dist/src/data/augment/presets.js';
import { initEngine } from '../dist/src/engine/backend.js';
import { defaultComponents } from '../dist/src/train/components.js';
import { MetricsLog } from '../dist/src/train/metrics.js';
import { knnAccuracy, knnSplit } from '../dist/src/train/monitor.js';
import { readResolvedRecipe } from '../dist/src/train/run-dir.js';
import { createRng } from '../dist/src/util/rng.js';

const [runDir, validationPath] = process.argv.slice(2);
if (!runDir || !validationPath) {
  process.stderr.write('usage: node bench/knn-random-init.mjs <run folder> <labelled validation data>\n');
  process.exit(2);
}
initEngine();
const recipe = readResolvedRecipe(runDir);
getTask(recipe.task.id); // the recipe's task must be known
const parts = await defaultComponents();
const source = await parts.openSource(validationPath, { labelled: true });
const { k, temperature, bankImages, queryImages } = recipe.monitor.knn;
const split = knnSplit(source, bankImages, queryImages, recipe.seed);
const backbone = parts.createBackbone(
  { ...recipe.backbone, inputChannels: recipe.input.channels },
  createRng(recipe.seed).derive('backbone'),
);
const channels = recipe.input.channels;
const views = [
  evalView({
    size: recipe.input.size,
    channels,
    mean: recipe.input.mean ?? new Array(channels).fill(0.5),
    std: recipe.input.std ?? new Array(channels).fill(0.5),
  }),
];
const makeLoader = (indices) =>
  parts.createLoader(source, {
    batchSize: 256,
    views,
    channels: recipe.input.channels,
    seed: recipe.seed,
    epoch: 0,
    shuffle: false,
    dropLast: false,
    subset: indices,
  });
const random = await knnAccuracy(backbone, source, split, makeLoader, k, temperature);
backbone.dispose();
const epochs = MetricsLog.read(`${runDir}/metrics.arrow`).epochRows();
console.log(`kNN accuracy (k ${k}, T ${temperature}, bank ${split.bank.length}, queries ${split.queries.length})`);
console.log(`  random init: ${(random * 100).toFixed(1)}%`);
for (const row of epochs)
  console.log(`  after epoch ${row.epoch}: ${(row.knnAccuracy * 100).toFixed(1)}% (loss ${row.loss.toFixed(4)})`);
