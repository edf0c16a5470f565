#!/usr/bin/env node
/**
 * Eval-mode features (and logits, when an fc came with the weights) that selfsup
 * computes for an input, for scripts/torch/check_checkpoints.py to compare with PyTorch:
 *
 *   npm run build && node scripts/torch/checkpoint-features.mjs <weights> <input.safetensors> <out.safetensors>
 *
 * <weights> is anything --backbone accepts (a backbone directory, a .pth/.ckpt file, file.pth#key);
 * <input.safetensors> holds `input` [B, C, H, W].
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const tf = await import('@tensorflow/tfjs');
const { initEngine } = await import(path.join(root, 'dist/src/engine/index.js'));
const { loadBackbone } = await import(path.join(root, 'dist/src/export/backbone-store.js'));
const { readSafetensors, writeSafetensors, entryToFloat32 } = await import(
  path.join(root, 'dist/src/export/safetensors.js')
);

const [weights, inputFile, out] = process.argv.slice(2);
if (!out) {
  console.error('usage: checkpoint-features.mjs <weights> <input.safetensors> <out.safetensors>');
  process.exit(2);
}
initEngine({ quiet: true });
const { backbone, fc } = await loadBackbone(weights);
const input = readSafetensors(inputFile).tensors.get('input');
const [features, logits] = tf.tidy(() => {
  const x = tf.tensor4d(entryToFloat32(input), input.shape).transpose([0, 2, 3, 1]);
  const f = backbone.features(x, false);
  const l = fc ? tf.add(tf.matMul(f, tf.tensor2d(fc.weight, [fc.inputDim, fc.outputDim])), fc.bias) : undefined;
  return [f.dataSync(), l?.dataSync()];
});
const tensors = { features: { dtype: 'F32', shape: [input.shape[0], backbone.featureDim], values: features } };
if (logits) tensors.logits = { dtype: 'F32', shape: [input.shape[0], fc.outputDim], values: logits };
await writeSafetensors(out, tensors);
backbone.dispose();
console.log(`wrote ${out}`);
