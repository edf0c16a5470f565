#!/usr/bin/env node
/**
 * Per-op time of one selfsup training step on native TensorFlow: every TensorFlow
 * op tfjs-node runs goes through the backend's executeSingleOutput /
 * executeMultipleOutputs, which this script wraps with a timer (TensorFlow's
 * eager CPU ops run synchronously, so wall time per call is the op's time).
 *
 *   npm run build && node bench/backbone-profile.mjs [--arch resnet18] [--stem small] [--size 32] [--batch 128] [--steps 2]
 *
 * Compare with: /usr/bin/python3 bench/torch_train_step.py --profile (same defaults).
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';

process.env.TF_ENABLE_ONEDNN_OPTS ??= '1';
const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const tf = await import('@tensorflow/tfjs');
const { initEngine } = await import(path.join(root, 'dist/src/engine/index.js'));
const { createBackbone } = await import(path.join(root, 'dist/src/backbones/index.js'));

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : fallback;
};
const arch = option('arch', 'resnet18');
const stem = option('stem', 'small');
const size = Number(option('size', '32'));
const batch = Number(option('batch', '128'));
const steps = Number(option('steps', '2'));

initEngine();
const backend = tf.backend();
const totals = new Map();
let recording = false;
for (const method of ['executeSingleOutput', 'executeMultipleOutputs']) {
  const original = backend[method].bind(backend);
  backend[method] = (name, ...rest) => {
    if (!recording) return original(name, ...rest);
    const start = process.hrtime.bigint();
    const out = original(name, ...rest);
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    const t = totals.get(name) ?? { ms: 0, calls: 0 };
    t.ms += ms;
    t.calls++;
    totals.set(name, t);
    return out;
  };
}

const backbone = createBackbone(arch, { stem, seed: 1 });
const head = tf.variable(tf.randomNormal([backbone.featureDim, 10], 0, 0.01));
const trainable = [
  ...backbone
    .variables()
    .filter((v) => v.trainable)
    .map((v) => v.variable),
  head,
];
const optimizer = tf.train.momentum(0.01, 0.9);
const x = tf.randomNormal([batch, size, size, 3]);
const labels = tf.oneHot(
  tf.tensor1d(
    Array.from({ length: batch }, (_, i) => i % 10),
    'int32',
  ),
  10,
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
step();
recording = true;
const start = process.hrtime.bigint();
for (let i = 0; i < steps; i++) step();
const wall = Number(process.hrtime.bigint() - start) / 1e6 / steps;
recording = false;
const rows = [...totals.entries()].map(([name, t]) => ({ name, ms: t.ms / steps, calls: t.calls / steps }));
rows.sort((a, b) => b.ms - a.ms);
const opSum = rows.reduce((s, r) => s + r.ms, 0);
console.log(
  `${arch} ${stem} ${size}x${size} batch ${batch}, oneDNN ${process.env.TF_ENABLE_ONEDNN_OPTS}: ${wall.toFixed(0)} ms/step wall, ${opSum.toFixed(0)} ms in TensorFlow ops, ${(wall - opSum).toFixed(0)} ms elsewhere (JS, tape)`,
);
for (const r of rows.slice(0, 15)) {
  console.log(
    `${r.name.padEnd(28)} ${r.ms.toFixed(1).padStart(9)} ms  ${((100 * r.ms) / wall).toFixed(1).padStart(5)}%  ${r.calls} calls`,
  );
}
