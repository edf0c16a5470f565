#!/usr/bin/env node
/**
 * Writes a selfsup backbone plus an input and the features selfsup computes for
 * it, for scripts/torch/load_check.py to verify in torchvision:
 *
 *   npm run build && node scripts/torch/write-check-export.mjs /tmp/selfsup-check [resnet18|resnet50] [small|imagenet]
 *   /usr/bin/python3 scripts/torch/load_check.py /tmp/selfsup-check/backbone --expected /tmp/selfsup-check/expected.safetensors
 *
 * The backbone trains 3 SGD steps first so its BatchNorm running statistics are not the trivial 0/1.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const tf = await import('@tensorflow/tfjs');
const { initEngine } = await import(path.join(root, 'dist/src/engine/index.js'));
const { createBackbone } = await import(path.join(root, 'dist/src/backbones/index.js'));
const { saveBackbone } = await import(path.join(root, 'dist/src/export/backbone-store.js'));
const { writeSafetensors } = await import(path.join(root, 'dist/src/export/safetensors.js'));

const out = process.argv[2] ?? '/tmp/selfsup-check';
const arch = process.argv[3] ?? 'resnet18';
const stem = process.argv[4] ?? 'small';
const size = stem === 'small' ? 32 : 64;
initEngine();
const backbone = createBackbone(arch, { stem, seed: 11 });
const x = tf.randomNormal([4, size, size, 3], 0, 1, 'float32', 5);
const optimizer = tf.train.momentum(0.01, 0.9);
const trainable = backbone
  .variables()
  .filter((v) => v.trainable)
  .map((v) => v.variable);
for (let i = 0; i < 3; i++) {
  tf.tidy(() => {
    const { grads } = tf.variableGrads(() => tf.mean(tf.square(backbone.features(x, true))), trainable);
    optimizer.applyGradients(grads);
  });
}
await saveBackbone(backbone, path.join(out, 'backbone'), { inputSize: size, pretextTask: 'load-check' });
const [features, input] = tf.tidy(() => [backbone.features(x, false).dataSync(), x.transpose([0, 3, 1, 2]).dataSync()]);
await writeSafetensors(path.join(out, 'expected.safetensors'), {
  input: { dtype: 'F32', shape: [4, 3, size, size], values: input },
  features: { dtype: 'F32', shape: [4, backbone.featureDim], values: features },
});
console.log(`wrote ${path.join(out, 'backbone')} and ${path.join(out, 'expected.safetensors')}`);
