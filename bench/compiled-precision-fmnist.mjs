#!/usr/bin/env node
/**
 * Does bfloat16 keep pretraining useful? Rotation pretraining on Fashion-MNIST
 * training images (no labels) with the compiled step in float32 and in bfloat16
 * (recipe.train.compile on, train.precision), same seeds, then a linear probe
 * on frozen features: fitted on labelled training images, scored on a
 * validation split of other training images (the test images are not used).
 *
 *   npx tsc -p tsconfig.json && nice -n 10 node bench/compiled-precision-fmnist.mjs \
 *     [--precisions float32,bfloat16] [--seeds 0,1] [--width 0.25] [--epochs 1] [--limit 10000] \
 *     [--batch 128] [--probe-train 5000] [--probe-val 5000] [--out /work/runs/precision] [--baseline]
 *
 * --baseline also probes the randomly initialised backbone of each seed (what pretraining adds);
 * --precisions none skips pretraining.
 *
 * Recipe: rotation (all four rotations, linear head), ResNet-18 small stem at --width,
 * SGD lr 0.1 momentum 0.9 Nesterov, weight decay 5e-4, cosine without warmup,
 * gradient clipping at 5 (as recipes/base/optim-sgd.yaml, warmup removed for one-epoch runs).
 * --optimizer adamw instead: AdamW lr 0.002, weight decay 1e-4 (not on BatchNorm parameters and
 * biases), cosine to 0 — bench/torch_fashion_pretext.py's settings; --lr overrides either rate.
 */
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
import { createRng } from '../dist/src/util/rng.js';

const { values: args } = parseArgs({
  options: {
    data: { type: 'string', default: '/usr/share/datasets/fashion-mnist' },
    precisions: { type: 'string', default: 'float32,bfloat16' },
    seeds: { type: 'string', default: '0,1' },
    width: { type: 'string', default: '0.25' },
    epochs: { type: 'string', default: '1' },
    limit: { type: 'string', default: '10000' },
    batch: { type: 'string', default: '128' },
    'probe-train': { type: 'string', default: '5000' },
    'probe-val': { type: 'string', default: '5000' },
    'probe-steps': { type: 'string', default: '500' },
    out: { type: 'string', default: 'runs/compiled-precision' },
    baseline: { type: 'boolean', default: false },
    optimizer: { type: 'string', default: 'sgd' },
    lr: { type: 'string' },
  },
});

const OPTIMIZERS = {
  sgd: { name: 'sgd', lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 5e-4 },
  adamw: { name: 'adamw', lr: 0.002, weightDecay: 1e-4 },
};
const optimizer = OPTIMIZERS[args.optimizer];
if (!optimizer) throw new Error(`--optimizer: one of ${Object.keys(OPTIMIZERS).join(', ')}, got ${args.optimizer}`);
if (args.lr) optimizer.lr = Number(args.lr);
const INPUT = { size: 28, channels: 1, mean: [0.286], std: [0.353] };
initEngine();
assertFastBackend(false);
const file = (name) => path.join(args.data, name);
const unlabeled = idxDataset(file('train-images-idx3-ubyte.gz'));
const labeled = idxDataset(file('train-images-idx3-ubyte.gz'), file('train-labels-idx1-ubyte.gz'));
// Probe images: training images drawn with a fixed seed; train and validation are disjoint.
const order = createRng('probe').permutation(labeled.size);
const probeTrainCount = Number(args['probe-train']);
const probeTrain = { source: labeled, indices: order.slice(0, probeTrainCount).sort() };
const probeVal = {
  source: labeled,
  indices: order.slice(probeTrainCount, probeTrainCount + Number(args['probe-val'])).sort(),
};

const rows = [];
const probeOptions = { steps: Number(args['probe-steps']) };
for (const seed of args.seeds.split(',').map(Number)) {
  if (args.baseline) {
    // The pretraining runs' starting point: the loop derives the backbone's rng as root.derive('backbone').
    const backbone = createBackbone('resnet18', {
      widthMultiplier: Number(args.width),
      stem: 'small',
      inputChannels: 1,
      rng: createRng(seed).derive('backbone'),
    });
    const probe = await probeBackbone(backbone, probeTrain, probeVal, INPUT, probeOptions);
    backbone.dispose();
    const row = {
      seed,
      precision: 'random init',
      steps: 0,
      lastLoss: Number.NaN,
      pretrainMinutes: 0,
      probeValAccuracy: probe.testAccuracy,
    };
    rows.push(row);
    console.log(JSON.stringify(row));
  }
  for (const precision of args.precisions === 'none' ? [] : args.precisions.split(',')) {
    const recipe = resolvePretrainRecipe(
      {
        name: `rotation-${args.optimizer === 'sgd' ? '' : `${args.optimizer}-`}${precision}-s${seed}`,
        seed,
        task: { id: 'rotation', options: { mode: 'all-four', head: 'linear' } },
        backbone: { arch: 'resnet18', widthMultiplier: Number(args.width), stem: 'small' },
        input: INPUT,
        data: { batchSize: Number(args.batch), limit: Number(args.limit), dropLast: true },
        train: {
          epochs: Number(args.epochs),
          optimizer,
          schedule: { name: 'cosine', warmupEpochs: 0, minLr: 0 },
          gradClipNorm: 5,
          keepCheckpoints: 1,
          compile: 'on',
          precision,
        },
        monitor: { onlineProbe: { enabled: false } },
      },
      getTask,
    );
    const start = performance.now();
    let trainingStep = '';
    const run = await pretrain(recipe, {
      source: unlabeled,
      outDir: args.out,
      progress: false,
      onEvent: (event) => {
        if (event.type === 'start') trainingStep = event.trainingStep;
        if (event.type === 'warning') console.error(event.message);
      },
    });
    const pretrainMinutes = (performance.now() - start) / 60000;
    const { backbone } = await loadBackbone(run.runDir);
    const probe = await probeBackbone(backbone, probeTrain, probeVal, INPUT, probeOptions);
    backbone.dispose();
    const row = {
      seed,
      precision,
      optimizer: args.optimizer,
      trainingStep,
      steps: run.losses.length,
      firstLoss: run.losses[0],
      lastLoss: run.losses.at(-1),
      pretrainMinutes: +pretrainMinutes.toFixed(2),
      probeValAccuracy: probe.testAccuracy,
      probeTrainAccuracy: probe.trainAccuracy,
      runDir: run.runDir,
    };
    rows.push(row);
    console.log(JSON.stringify(row));
  }
}
console.log('\n| seed | precision | steps | last loss | pretrain min | probe val acc |\n|---|---|---|---|---|---|');
for (const r of rows) {
  console.log(
    `| ${r.seed} | ${r.precision} | ${r.steps} | ${r.lastLoss.toFixed(4)} | ${r.pretrainMinutes} | ${(100 * r.probeValAccuracy).toFixed(2)}% |`,
  );
}
