#!/usr/bin/env node
/**
 * Finetuning experiments on Fashion-MNIST that run on a frozen
 * backbone (linear probes on its features; cheap enough for a shared 2-core
 * machine), each over several seeds:
 *
 *   imbalance    100 labels/class, classes 0,2,4,6,8 keep 10% (10/class):
 *                plain cross-entropy vs focal (effective-number alpha) vs
 *                class-balanced sampling vs inverse-frequency weights -> macro-F1
 *   calibration  100 labels/class: cross-entropy vs label smoothing 0.1 -> ECE
 *   mislabel     100 labels/class with 10% of the labels flipped: precision at k
 *                (k = number flipped) of the kNN, out-of-fold and combined rankings
 *
 * Each configuration is exactly what `selfsup finetune <recipe> --per-class ...
 * [--minority ... | --flip-labels ...]` runs (same library calls, same seeds);
 * this script only reuses the decoded test set and its features across runs.
 *
 * Usage: npx tsc -p tsconfig.json && node bench/finetune-fashion-mnist.mjs --backbone <run|export> [options]
 *   --data DIR         Fashion-MNIST IDX folder [/usr/share/datasets/fashion-mnist]
 *   --seeds LIST       [0,1,2]
 *   --per-class N      [100]
 *   --test-limit N     stratified test sample [2000]
 *   --only LIST        experiments to run [imbalance,calibration,mislabel]
 *   --out FILE         results JSON [runs/finetune-experiments.json]
 */
import os from 'node:os';
import { parseArgs } from 'node:util';
import { initEngine } from '../dist/src/engine/backend.js';
import { Classifier } from '../dist/src/finetune/classifier.js';
import {
  knnLabelDistribution,
  outOfFoldProbabilities,
  precisionAtK,
  rankSuspiciousLabels,
} from '../dist/src/finetune/label-problems.js';
import { resolveInput } from '../dist/src/finetune/recipe.js';
import { finetuneOnData, openBackbone, prepareData } from '../dist/src/finetune/run.js';
import { loadFinetuneRecipe } from '../dist/src/recipes/finetune-recipe.js';
import { writeFileAtomicSync } from '../dist/src/util/atomic.js';
import { createRng } from '../dist/src/util/rng.js';

const { values: args } = parseArgs({
  options: {
    backbone: { type: 'string' },
    data: { type: 'string', default: '/usr/share/datasets/fashion-mnist' },
    seeds: { type: 'string', default: '0,1,2' },
    'per-class': { type: 'string', default: '100' },
    'test-limit': { type: 'string', default: '2000' },
    only: { type: 'string', default: 'imbalance,calibration,mislabel' },
    out: { type: 'string', default: 'runs/finetune-experiments.json' },
  },
});
if (!args.backbone) throw new Error('--backbone <run|export> is required');
initEngine();
const seeds = args.seeds.split(',').map(Number);
const perClass = Number(args['per-class']);
const only = new Set(args.only.split(','));
const started = Date.now();
const results = {
  backbone: args.backbone,
  perClass,
  seeds,
  testLimit: Number(args['test-limit']),
  load: os.loadavg(),
  runs: [],
};
const featureCache = new Map();

async function run(experiment, config, recipeFile, subsets, seed, override = {}) {
  const recipe = { ...loadFinetuneRecipe(recipeFile), seed, ...override };
  recipe.labelProblems = { ...recipe.labelProblems, enabled: false };
  const { backbone, manifest } = await openBackbone(args.backbone);
  const input = resolveInput(recipe, backbone.config.inputChannels, manifest);
  const data = await prepareData(
    { labels: args.data, test: args.data, testLimit: Number(args['test-limit']) },
    input,
    recipe,
    { perClass, ...subsets, seed },
  );
  const outcome = await finetuneOnData(backbone, input, recipe, data, { featureCache, featureKey: 'backbone' });
  const m = outcome.evaluation.metrics;
  const row = {
    experiment,
    config,
    recipe: recipeFile,
    seed,
    trainImages: data.train.count,
    accuracy: m.accuracy,
    macroF1: m.macroF1,
    ece: outcome.evaluation.calibration.ece,
    minorityRecall: subsets.minorityClasses
      ? subsets.minorityClasses.reduce((a, c) => a + m.perClass[c].recall, 0) / subsets.minorityClasses.length
      : undefined,
    seconds: outcome.seconds,
  };
  outcome.classifier.dispose();
  results.runs.push(row);
  console.log(JSON.stringify(row));
  return row;
}

if (only.has('imbalance')) {
  const minority = { minorityClasses: [0, 2, 4, 6, 8], minorityFactor: 0.1 };
  for (const seed of seeds) {
    await run('imbalance', 'cross-entropy', 'recipes/finetune-linear-probe.yaml', minority, seed);
    await run('imbalance', 'focal + effective-number alpha', 'recipes/finetune-focal.yaml', minority, seed);
    await run('imbalance', 'class-balanced sampling', 'recipes/finetune-balanced.yaml', minority, seed);
    const weighted = loadFinetuneRecipe('recipes/finetune-linear-probe.yaml');
    await run('imbalance', 'inverse-frequency weights', 'recipes/finetune-linear-probe.yaml', minority, seed, {
      balance: { ...weighted.balance, classWeights: 'inverse-frequency' },
    });
  }
}

if (only.has('calibration')) {
  for (const seed of seeds) {
    await run('calibration', 'cross-entropy', 'recipes/finetune-linear-probe.yaml', {}, seed);
    await run('calibration', 'label smoothing 0.1', 'recipes/finetune-label-smoothing.yaml', {}, seed);
  }
}

if (only.has('mislabel')) {
  const recipe = loadFinetuneRecipe('recipes/finetune-linear-probe.yaml');
  for (const seed of seeds) {
    const { backbone, manifest } = await openBackbone(args.backbone);
    const input = resolveInput(recipe, backbone.config.inputChannels, manifest);
    const data = await prepareData(
      { labels: args.data, test: args.data, testLimit: 10 },
      input,
      { ...recipe, seed },
      {
        perClass,
        flipFraction: 0.1,
        seed,
      },
    );
    const classifier = new Classifier(
      backbone,
      { input, classNames: data.train.classNames, hidden: [] },
      createRng(seed),
    );
    const features = classifier.extractFeatures(data.train, 256);
    const k = data.train.classNames.length;
    const dim = backbone.featureDim;
    const t0 = Date.now();
    const knn = knnLabelDistribution(features, dim, data.train.labels, k, recipe.labelProblems.k);
    const oof = outOfFoldProbabilities(features, dim, data.train.labels, k, recipe.labelProblems.folds, seed);
    const flipped = data.flipped;
    const count = flipped.reduce((a, b) => a + b, 0);
    const p = (sources) =>
      precisionAtK(rankSuspiciousLabels(data.train.labels, k, sources).order, (i) => flipped[i] === 1, count);
    const row = {
      experiment: 'mislabel',
      seed,
      trainImages: data.train.count,
      flipped: count,
      precisionAtK: { knn: p({ knn }), outOfFold: p({ classifier: oof }), combined: p({ knn, classifier: oof }) },
      precisionAt50Combined: precisionAtK(
        rankSuspiciousLabels(data.train.labels, k, { knn, classifier: oof }).order,
        (i) => flipped[i] === 1,
        50,
      ),
      seconds: (Date.now() - t0) / 1000,
    };
    classifier.dispose();
    results.runs.push(row);
    console.log(JSON.stringify(row));
  }
}

results.seconds = (Date.now() - started) / 1000;
results.loadAfter = os.loadavg();
writeFileAtomicSync(args.out, `${JSON.stringify(results, null, 2)}\n`);
console.log(`wrote ${args.out} in ${results.seconds.toFixed(0)} s`);
