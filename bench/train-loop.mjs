#!/usr/bin/env node
/**
 * Overhead of the training loop (src/train), measured against a reference in the
 * same process:
 *  1. one step = selfsup's computeStep (variableGrads + clipping + host checks) +
 *     its SGD over variables, vs the same forward/backward with tfjs's own
 *     optimizer (tf.train.momentum, Nesterov) through optimizer.minimize;
 *     the two are interleaved step by step so machine load hits both alike;
 *  2. the whole `pretrain()` loop on the demo IDX images (real loader, checkpoints,
 *     metrics) vs its own compute time: the share of wall time not spent in steps.
 *
 *   npm run build && node bench/train-loop.mjs [--task rotation] [--width 0.25] [--batch 64] [--steps 6]
 */
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs';
import { getTask } from '../dist/pretext-tasks/registry.js';
import { createBackbone } from '../dist/src/backbones/registry.js';
import { idxDataset } from '../dist/src/data/datasets/idx.js';
import { initEngine } from '../dist/src/engine/backend.js';
import { resolvePretrainRecipe } from '../dist/src/recipes/pretrain-recipe.js';
import { pretrain } from '../dist/src/train/loop.js';
import { createOptimizer } from '../dist/src/train/optimizers.js';
import { computeStep } from '../dist/src/train/step.js';
import { createRng } from '../dist/src/util/rng.js';

const { values } = parseArgs({
  options: {
    task: { type: 'string', default: 'rotation' },
    width: { type: 'string', default: '0.25' },
    batch: { type: 'string', default: '64' },
    steps: { type: 'string', default: '6' },
  },
});
const batchSize = Number(values.batch);
const steps = Number(values.steps);
initEngine();

const recipe = resolvePretrainRecipe(
  {
    name: 'bench',
    task: { id: values.task, options: values.task === 'rotation' ? { mode: 'random-one' } : {} },
    backbone: { arch: 'resnet18', widthMultiplier: Number(values.width), stem: 'small' },
    input: { size: 32, channels: 1 },
    data: { batchSize, limit: batchSize * steps, workers: 1 },
    train: {
      epochs: 1,
      optimizer: { name: 'sgd', lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 0 },
      schedule: { name: 'constant' },
    },
    monitor: { collapse: { everySteps: 0 } },
  },
  getTask,
);
const task = getTask(recipe.task.id);
const options = task.validate(recipe.task.options);
const input = { size: 32, channels: 1, mean: [0.5], std: [0.5] };

// A fixed batch of normalised noise in the task's view shapes (views as the loader would give them).
const rng = createRng(1);
const views = task.views(options, input).map((pipeline) => {
  const jigsaw = pipeline.find((s) => s.op === 'jigsaw');
  const shape = jigsaw
    ? [batchSize, jigsaw.grid * jigsaw.grid, jigsaw.tileSize, jigsaw.tileSize, 1]
    : [batchSize, 32, 32, 1];
  const data = Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal());
  return { data, shape };
});
const batch = { indices: Int32Array.from({ length: batchSize }, (_, i) => i), views };

function build(seed) {
  const backbone = createBackbone('resnet18', {
    inputChannels: 1,
    widthMultiplier: Number(values.width),
    stem: 'small',
    seed,
  });
  const heads = task.createHeads(options, backbone.featureDim, createRng(seed).derive('heads'));
  const params = [];
  for (const v of backbone.variables())
    if (v.trainable) params.push({ name: `b.${v.name}`, variable: v.variable, kind: v.kind });
  for (const [key, head] of Object.entries(task.headModules(heads)))
    for (const v of head.variables())
      if (v.trainable) params.push({ name: `h.${key}.${v.name}`, variable: v.variable, kind: v.kind });
  return { backbone, heads, params };
}

const ours = build(1);
const optimizer = createOptimizer(recipe.train.optimizer, ours.params);
const reference = build(1);
const tfOptimizer = tf.train.momentum(0.05, 0.9, true);

async function ourStep(i) {
  const computed = await computeStep({
    task,
    taskOptions: options,
    backbone: ours.backbone,
    heads: ours.heads,
    params: ours.params,
    batch,
    rng: createRng(0).derive('step', 0, i),
    gradClipNorm: 0,
    measureSpread: false,
  });
  tf.tidy(() => optimizer.apply(computed.grads, 0.05));
  computed.dispose();
  return computed.loss;
}
function referenceStep(i) {
  const viewTensors = views.map((v) => tf.tensor(v.data, v.shape));
  const loss = tfOptimizer.minimize(
    () =>
      task.step(
        {
          backbone: reference.backbone,
          heads: reference.heads,
          views: viewTensors,
          training: true,
          rng: createRng(0).derive('step', 0, i),
        },
        options,
      ).loss,
    true,
    reference.params.map((p) => p.variable),
  );
  const value = loss.dataSync()[0];
  tf.dispose([loss, ...viewTensors]);
  return value;
}

const time = async (fn) => {
  const start = performance.now();
  await fn();
  return performance.now() - start;
};
await ourStep(0); // warm-up: kernel selection, allocations
referenceStep(0);
let oursMs = 0;
let referenceMs = 0;
for (let i = 1; i <= steps; i++) {
  oursMs += await time(() => ourStep(i));
  referenceMs += await time(() => referenceStep(i));
}
const load = os.loadavg()[0].toFixed(1);
console.log(
  `task ${values.task}, ResNet-18 width ${values.width}, small stem, 32 px, batch ${batchSize}, ${steps} steps, load ${load}`,
);
console.log(`  selfsup step (computeStep + SGD over variables): ${(oursMs / steps).toFixed(0)} ms/step`);
console.log(`  reference (tf.train.momentum minimize):         ${(referenceMs / steps).toFixed(0)} ms/step`);
console.log(`  ratio selfsup / reference: ${(oursMs / referenceMs).toFixed(3)}`);

// 2. The whole loop on the demo IDX images.
const source = idxDataset(path.resolve('data/fashion-mnist-demo/idx/train-images-idx3-ubyte.gz'));
const outDir = mkdtempSync(path.join(os.tmpdir(), 'selfsup-bench-loop-'));
const wallStart = performance.now();
const result = await pretrain(recipe, { source, outDir, progress: false });
const wallMs = performance.now() - wallStart;
const rows = result.metrics.stepRows();
const computeMs = rows.reduce((n, r) => n + r.seconds * 1000, 0);
const waitMs = rows.reduce((n, r) => n + r.dataWaitMs, 0);
const images = rows.length * batchSize;
console.log(
  `pretrain() on ${images} demo IDX images (${rows.length} steps, real loader, 1 checkpoint, metrics, curves, export), load ${os.loadavg()[0].toFixed(1)}`,
);
console.log(
  `  wall ${(wallMs / 1000).toFixed(1)} s = ${(images / (wallMs / 1000)).toFixed(1)} img/s; in steps ${(computeMs / 1000).toFixed(1)} s = ${(images / (computeMs / 1000)).toFixed(1)} img/s`,
);
console.log(
  `  data wait ${(waitMs / 1000).toFixed(2)} s (${((100 * waitMs) / wallMs).toFixed(1)}% of wall); other loop work ${(((wallMs - computeMs - waitMs) / wallMs) * 100).toFixed(1)}% of wall`,
);
