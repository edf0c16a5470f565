#!/usr/bin/env node
/**
 * Pretext tasks on Fashion-MNIST: pretrain a ResNet-18 on the training
 * images WITHOUT labels with each pretext task, then fit a linear probe
 * (softmax regression on frozen pooled features) on labeled training images and
 * report its test accuracy, against a randomly initialised backbone of the same
 * architecture and seed.
 *
 * Runs on the built library: `npx tsc -p tsconfig.json && node bench/fashion-mnist-pretext.mjs`.
 *
 * Options (defaults in brackets):
 *   --data DIR          Fashion-MNIST IDX folder [/usr/share/datasets/fashion-mnist]
 *   --tasks LIST        comma-separated task ids (rotation, contrastive, jigsaw, byol, simsiam, barlow-twins,
 *                       vicreg, moco, dino), or "none" for the baseline only [rotation,contrastive,jigsaw]
 *   --width W           ResNet-18 width multiplier [0.25]
 *   --epochs N          pretraining epochs [1]
 *   --limit N           pretraining images (seeded subset of the 60,000) [60000]
 *   --batch N           pretraining batch size [128]
 *   --lr X              AdamW learning rate [0.002]
 *   --probe-train N     labeled training images for the probe [10000]
 *   --probe-test N      test images for the probe [10000]
 *   --probe-steps N     full-batch Adam steps of the probe [500]
 *   --knn-k N           neighbours of the kNN probe (cosine, votes exp(s / 0.1)) on the same features [200]
 *   --no-baseline       skip the random-init backbone's probe
 *   --seed N            run seed [0]
 *   --init PATH         continued pretraining: start every task's backbone from these weights (recipe init)
 *   --init-lr-multiplier X  backbone learning rate x this during --init-warm-epochs [1]
 *   --init-warm-epochs N    epochs at the lower backbone rate [0]
 *   --compile MODE      recipe train.compile: off | auto | on [off]
 *   --precision P       recipe train.precision: float32 | bfloat16 | auto [float32]
 *   --out DIR           run folders and results.json [runs/fashion-mnist-pretext]
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { getTask } from '../dist/pretext-tasks/registry.js';
import { createBackbone } from '../dist/src/backbones/registry.js';
import { idxDataset } from '../dist/src/data/datasets/idx.js';
import { assertFastBackend, initEngine } from '../dist/src/engine/backend.js';
import { loadBackbone } from '../dist/src/export/backbone-store.js';
import { probeBackbone } from '../dist/src/probes/features.js';
import { resolvePretrainRecipe } from '../dist/src/recipes/pretrain-recipe.js';
import { pretrain } from '../dist/src/train/loop.js';
import { writeFileAtomicSync } from '../dist/src/util/atomic.js';
import { createRng } from '../dist/src/util/rng.js';

const { values: args } = parseArgs({
  options: {
    data: { type: 'string', default: '/usr/share/datasets/fashion-mnist' },
    tasks: { type: 'string', default: 'rotation,contrastive,jigsaw' },
    width: { type: 'string', default: '0.25' },
    epochs: { type: 'string', default: '1' },
    limit: { type: 'string', default: '60000' },
    batch: { type: 'string', default: '128' },
    lr: { type: 'string', default: '0.002' },
    'probe-train': { type: 'string', default: '10000' },
    'probe-test': { type: 'string', default: '10000' },
    'probe-steps': { type: 'string', default: '500' },
    'knn-k': { type: 'string', default: '200' },
    'no-baseline': { type: 'boolean', default: false },
    seed: { type: 'string', default: '0' },
    init: { type: 'string' },
    'init-lr-multiplier': { type: 'string', default: '1' },
    'init-warm-epochs': { type: 'string', default: '0' },
    compile: { type: 'string', default: 'off' },
    precision: { type: 'string', default: 'float32' },
    out: { type: 'string', default: 'runs/fashion-mnist-pretext' },
  },
});

const INPUT = { size: 28, channels: 1, mean: [0.286], std: [0.353] };
/** Task options for 28 px grayscale images (everything else: the task's defaults). */
const TASK_OPTIONS = {
  rotation: { mode: 'all-four' },
  contrastive: { temperature: 0.5, cropScale: [0.2, 1] },
  jigsaw: { grid: 2, permutationCount: 24 },
  // The methods' heads at the scale of a width-0.25 ResNet-18 (128 features); targets faster than the
  // papers' 0.996 for runs of ~100 steps.
  byol: { projectionDim: 128, hiddenDim: 512, momentum: 0.99, momentumEnd: 1 },
  simsiam: { projectionDim: 512, hiddenDim: 512, predictorHiddenDim: 128 },
  'barlow-twins': { projectionDim: 1024, hiddenDim: 1024 },
  vicreg: { projectionDim: 1024, hiddenDim: 1024 },
  moco: { temperature: 0.1, queueSize: 2048, momentum: 0.99, momentumEnd: 1 },
  dino: {
    outputDim: 1024,
    hiddenDim: 512,
    bottleneckDim: 128,
    localViews: 2,
    localSize: 14,
    teacherTemperature: 0.04,
    warmupTeacherEpochs: 0,
    momentum: 0.99,
  },
};

const width = Number(args.width);
const seed = Number(args.seed);
const taskIds = args.tasks === 'none' ? [] : args.tasks.split(',');
const minutes = (ms) => Math.round((ms / 60000) * 100) / 100;

const engine = initEngine();
assertFastBackend(false);
const file = (name) => path.join(args.data, name);
const unlabeled = idxDataset(file('train-images-idx3-ubyte.gz')); // pretraining: no labels
const labeledTrain = idxDataset(file('train-images-idx3-ubyte.gz'), file('train-labels-idx1-ubyte.gz'));
const test = idxDataset(file('t10k-images-idx3-ubyte.gz'), file('t10k-labels-idx1-ubyte.gz'));
const probeTrain = {
  source: labeledTrain,
  indices: createRng(seed).derive('probe').permutation(labeledTrain.size).slice(0, Number(args['probe-train'])).sort(),
};
const probeTest = { source: test, indices: Int32Array.from({ length: Number(args['probe-test']) }, (_, i) => i) };
const probeOptions = { steps: Number(args['probe-steps']), knn: { k: Number(args['knn-k']) } };
const backboneConfig = { arch: 'resnet18', widthMultiplier: width, stem: 'small' };

const results = [];
const record = (row) => {
  results.push(row);
  console.log(JSON.stringify(row));
};

// Baseline: the same architecture with the same initialisation the pretraining runs start from.
if (!args['no-baseline']) {
  const start = performance.now();
  const backbone = createBackbone('resnet18', {
    ...backboneConfig,
    inputChannels: 1,
    rng: createRng(seed).derive('backbone'),
  });
  const probe = await probeBackbone(backbone, probeTrain, probeTest, INPUT, probeOptions);
  backbone.dispose();
  record({ task: 'random init', pretrainMinutes: 0, probeMinutes: minutes(performance.now() - start), ...probe });
}

for (const id of taskIds) {
  const recipe = resolvePretrainRecipe(
    {
      name: `fmnist-${id}${args.init ? '-init' : ''}`,
      seed,
      task: { id, options: TASK_OPTIONS[id] ?? {} },
      backbone: backboneConfig,
      input: INPUT,
      data: { batchSize: Number(args.batch), limit: Number(args.limit), dropLast: true },
      train: {
        epochs: Number(args.epochs),
        optimizer: { name: 'adamw', lr: Number(args.lr), weightDecay: 1e-4 },
        schedule: { name: 'cosine', warmupEpochs: 0, minLr: 0 },
        checkpointEveryEpochs: 1,
        keepCheckpoints: 1,
        compile: args.compile,
        precision: args.precision,
      },
      monitor: { collapse: { everySteps: 50 } },
      ...(args.init
        ? {
            init: {
              weights: args.init,
              backboneLrMultiplier: Number(args['init-lr-multiplier']),
              warmEpochs: Number(args['init-warm-epochs']),
            },
          }
        : {}),
    },
    getTask,
  );
  const start = performance.now();
  const run = await pretrain(recipe, {
    source: unlabeled,
    outDir: args.out,
    progress: false,
    onEvent: (event) => {
      if (event.type === 'start') console.error(`${id} training step: ${event.trainingStep}`);
      if (event.type === 'epoch' || event.type === 'warning') console.error(id, JSON.stringify(event));
      if (event.type === 'step' && event.row.globalStep % 50 === 0) {
        const r = event.row;
        console.error(
          `${id} step ${r.globalStep} loss ${r.loss.toFixed(4)} acc ${(r.accuracy ?? Number.NaN).toFixed(3)} ${r.imagesPerSecond.toFixed(0)} img/s`,
        );
      }
    },
  });
  const pretrainMs = performance.now() - start;
  const epochRows = run.metrics.rows?.filter?.((r) => r.kind === 'epoch') ?? [];
  const last = epochRows.at(-1) ?? {};
  const probeStart = performance.now();
  const { backbone } = await loadBackbone(run.runDir);
  const probe = await probeBackbone(backbone, probeTrain, probeTest, INPUT, probeOptions);
  backbone.dispose();
  record({
    task: id,
    options: recipe.task.options,
    runDir: run.runDir,
    steps: run.losses.length,
    firstLoss: run.losses[0],
    lastLoss: run.losses.at(-1),
    lastEpochLoss: last.loss,
    lastEpochTaskAccuracy: last.accuracy,
    pretrainMinutes: minutes(pretrainMs),
    probeMinutes: minutes(performance.now() - probeStart),
    ...probe,
  });
}

const summary = {
  command: `node bench/fashion-mnist-pretext.mjs ${process.argv.slice(2).join(' ')}`.trim(),
  engine: { backend: engine.backend, tensorflow: engine.tensorflowVersion, threads: engine.intraOpThreads },
  budget: {
    width,
    epochs: Number(args.epochs),
    pretrainImages: Math.min(Number(args.limit), unlabeled.size),
    batch: Number(args.batch),
    lr: Number(args.lr),
    probeTrain: probeTrain.indices.length,
    probeTest: probeTest.indices.length,
    probeSteps: probeOptions.steps,
    knnK: probeOptions.knn.k,
    init: args.init ?? null,
  },
  results,
  finishedAt: new Date().toISOString(),
};
mkdirSync(args.out, { recursive: true });
writeFileAtomicSync(path.join(args.out, `results-${Date.now()}.json`), `${JSON.stringify(summary, null, 2)}\n`);
console.log('\n| backbone | pretrain min | probe test acc | kNN test acc | probe train acc |\n|---|---|---|---|---|');
for (const r of results) {
  console.log(
    `| ${r.task} | ${r.pretrainMinutes} | ${(100 * r.testAccuracy).toFixed(2)}% | ${(100 * r.knnAccuracy).toFixed(2)}% | ${(100 * r.trainAccuracy).toFixed(2)}% |`,
  );
}
