#!/usr/bin/env node
/**
 * Training-step throughput of the selfsup ResNets (forward + backward + SGD
 * momentum update, softmax cross-entropy on a 10-way linear head) on native
 * TensorFlow, against PyTorch's figure for the same model and batch measured in
 * the same run (bench/torch_train_step.py, when /usr/bin/python3 imports torch).
 *
 *   npm run build && node bench/backbone-train.mjs [--steps 3] [--rounds 1] [--only resnet18|resnet50]
 *                                                   [--torch-threads 2] [--no-torch]
 *
 * TensorFlow runs with oneDNN on (TF_ENABLE_ONEDNN_OPTS=1) unless the variable is
 * set; pass TF_ENABLE_ONEDNN_OPTS=0 to measure plain Eigen kernels.
 */
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

process.env.TF_ENABLE_ONEDNN_OPTS ??= '1';
const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const tf = await import('@tensorflow/tfjs');
const { initEngine } = await import(path.join(root, 'dist/src/engine/index.js'));
const { createBackbone } = await import(path.join(root, 'dist/src/backbones/index.js'));
const { forwardFlops } = await import('./resnet-flops.mjs');

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : fallback;
};
const steps = Number(option('steps', '3'));
const rounds = Number(option('rounds', '1'));
const only = option('only', undefined);
const torchThreads = Number(option('torch-threads', '2'));
const useTorch = !args.includes('--no-torch');

const CASES = [
  { arch: 'resnet18', stem: 'small', size: 32, batch: 128 },
  { arch: 'resnet50', stem: 'imagenet', size: 224, batch: 16 },
].filter((c) => !only || c.arch === only);

function measureTf(c) {
  const backbone = createBackbone(c.arch, { stem: c.stem, seed: 1 });
  const classes = 10;
  const head = tf.variable(tf.randomNormal([backbone.featureDim, classes], 0, 0.01), true, `bench-head-${c.arch}`);
  const trainable = [
    ...backbone
      .variables()
      .filter((v) => v.trainable)
      .map((v) => v.variable),
    head,
  ];
  const optimizer = tf.train.momentum(0.01, 0.9);
  const x = tf.randomNormal([c.batch, c.size, c.size, 3]);
  const labels = tf.oneHot(
    tf.tensor1d(
      Array.from({ length: c.batch }, (_, i) => i % classes),
      'int32',
    ),
    classes,
  );
  const step = () =>
    tf.tidy(() => {
      const { value, grads } = tf.variableGrads(
        () => tf.losses.softmaxCrossEntropy(labels, tf.matMul(backbone.features(x, true), head)),
        trainable,
      );
      optimizer.applyGradients(grads);
      return value.dataSync()[0];
    });
  step(); // warm-up: kernel selection, allocations, optimizer slots
  const before = tf.memory().numTensors;
  const times = [];
  for (let i = 0; i < steps; i++) {
    const start = process.hrtime.bigint();
    step();
    times.push(Number(process.hrtime.bigint() - start) / 1e9);
  }
  const leaked = tf.memory().numTensors - before;
  optimizer.dispose();
  backbone.dispose();
  tf.dispose([head, x, labels]);
  const seconds = times.reduce((a, b) => a + b, 0);
  return { seconds, stepTimes: times, imagesPerSecond: (c.batch * steps) / seconds, leaked };
}

function measureTorch(c) {
  const r = spawnSync(
    '/usr/bin/python3',
    [
      path.join(root, 'bench/torch_train_step.py'),
      ...['--arch', c.arch, '--stem', c.stem, '--size', String(c.size), '--batch', String(c.batch)],
      ...['--steps', String(steps), '--threads', String(torchThreads)],
    ],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) return { error: (r.stderr || r.error?.message || 'failed').trim().split('\n').pop() };
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

const torchAvailable =
  useTorch && spawnSync('/usr/bin/python3', ['-c', 'import torch, torchvision'], { encoding: 'utf8' }).status === 0;
const engine = initEngine();
const load = () =>
  os
    .loadavg()
    .map((v) => v.toFixed(1))
    .join(' ');
console.log(
  `engine ${engine.backend} (TensorFlow ${engine.tensorflowVersion}), oneDNN ${process.env.TF_ENABLE_ONEDNN_OPTS}, ` +
    `TF intra-op threads ${engine.intraOpThreads}, cpus ${os.cpus().length}; torch threads ${torchAvailable ? torchThreads : 'n/a'}`,
);
console.log(`load average at start: ${load()}`);
const results = [];
for (let round = 0; round < rounds; round++) {
  for (const c of CASES) {
    const flops = 3 * forwardFlops(c); // forward + backward (input and weight gradients) ~ 3x forward
    const torchResult = torchAvailable ? measureTorch(c) : undefined;
    const tfResult = measureTf(c);
    const line = {
      round,
      model: `${c.arch} (${c.stem} stem, ${c.size}x${c.size}, batch ${c.batch})`,
      tfImagesPerSecond: tfResult.imagesPerSecond,
      tfGflops: (flops * tfResult.imagesPerSecond) / 1e9,
      tfStepTimes: tfResult.stepTimes.map((t) => +t.toFixed(3)),
      leakedTensorsPerRun: tfResult.leaked,
      torchImagesPerSecond: torchResult?.images_per_second,
      torchGflops: torchResult?.images_per_second ? (flops * torchResult.images_per_second) / 1e9 : undefined,
      torchStepTimes: torchResult?.step_times?.map((t) => +t.toFixed(3)),
      torchError: torchResult?.error,
      ratio: torchResult?.images_per_second ? tfResult.imagesPerSecond / torchResult.images_per_second : undefined,
      loadAverage: load(),
    };
    results.push(line);
    console.log(
      `${line.model}: TF ${line.tfImagesPerSecond.toFixed(1)} img/s (${line.tfGflops.toFixed(0)} GFLOP/s)` +
        (line.torchImagesPerSecond
          ? `, PyTorch ${line.torchImagesPerSecond.toFixed(1)} img/s (${line.torchGflops.toFixed(0)} GFLOP/s), ratio TF/PyTorch ${line.ratio.toFixed(2)}`
          : `, PyTorch: ${line.torchError ?? 'not available'}`) +
        `  [load ${line.loadAverage}]`,
    );
  }
}
if (args.includes('--json')) console.log(JSON.stringify(results, null, 2));
