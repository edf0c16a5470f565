#!/usr/bin/env node
/**
 * Writes ONNX exports plus an input and selfsup's own eval-mode outputs for it,
 * for scripts/onnx/check_onnx.py to verify in Python (ONNX checker + onnxruntime):
 *
 *   npm run build && node scripts/onnx/write-parity-cases.mjs /tmp/selfsup-onnx
 *   /work/venvs/onnx/bin/python scripts/onnx/check_onnx.py /tmp/selfsup-onnx
 *
 * Cases: ResNet-18 and ResNet-50 at full width with the ImageNet stem (64 px) and
 * the small stem (32 px), float32 weights; ResNet-18 (small stem) with float16
 * weights; a quarter-width ResNet-18 with an MLP classifier head and softmax.
 * BatchNorm parameters and statistics are set to trained-looking values (the
 * last BN of each block has a small gamma) so a wrong fold cannot hide.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const tf = await import('@tensorflow/tfjs');
const selfsup = await import(path.join(root, 'dist/src/index.js'));
const { backboneToOnnx, writeSafetensors } = selfsup.exporting;
const { IMAGENET_MEAN, IMAGENET_STD } = selfsup.data;
const { createHead, mlpBlocks } = selfsup.backbones;

const out = process.argv[2] ?? '/tmp/selfsup-onnx';
mkdirSync(out, { recursive: true });
selfsup.initEngine({ quiet: true });

function trainedLookingBatchNorm(variables, seed) {
  const rng = selfsup.createRng(seed).derive('bn');
  for (const { name, variable, kind } of variables) {
    if (!kind.startsWith('bn-')) continue;
    const lastOfBlock = /(layer\d\.\d+\.bn2|layer\d\.\d+\.bn3)\.weight$/.test(name);
    const values = Float32Array.from({ length: variable.size }, () => {
      const u = 2 * rng.next() - 1;
      if (kind === 'bn-gamma') return lastOfBlock ? 0.2 + 0.05 * u : 1 + 0.2 * u;
      if (kind === 'bn-var') return 1.25 + 0.25 * u;
      return 0.1 * u; // beta, running mean
    });
    tf.tidy(() => variable.assign(tf.tensor(values, variable.shape)));
  }
}

const cases = [
  { name: 'resnet18-imagenet', arch: 'resnet18', stem: 'imagenet', size: 64 },
  { name: 'resnet18-small', arch: 'resnet18', stem: 'small', size: 32 },
  { name: 'resnet50-imagenet', arch: 'resnet50', stem: 'imagenet', size: 64 },
  { name: 'resnet50-small', arch: 'resnet50', stem: 'small', size: 32 },
  { name: 'resnet18-small-float16', arch: 'resnet18', stem: 'small', size: 32, weights: 'float16' },
  { name: 'resnet18-classifier', arch: 'resnet18', stem: 'imagenet', size: 64, widthMultiplier: 0.25, classes: 7 },
];
const written = [];
for (const [index, c] of cases.entries()) {
  const backbone = selfsup.createBackbone(c.arch, {
    stem: c.stem,
    widthMultiplier: c.widthMultiplier ?? 1,
    seed: index,
  });
  trainedLookingBatchNorm(backbone.variables(), index);
  const head = c.classes
    ? createHead(mlpBlocks([32], c.classes), backbone.featureDim, selfsup.createRng(index), 'classifier')
    : undefined;
  if (head) trainedLookingBatchNorm(head.variables(), index + 100);
  const bytes = backboneToOnnx(backbone, {
    mean: IMAGENET_MEAN,
    std: IMAGENET_STD,
    inputSize: c.size,
    weights: c.weights ?? 'float32',
    head,
    softmax: Boolean(head),
  });
  writeFileSync(path.join(out, `${c.name}.onnx`), bytes);
  const [input, output] = tf.tidy(() => {
    const pixels = tf.randomUniform([3, c.size, c.size, 3], 0, 1, 'float32', 100 + index);
    const x = tf.div(tf.sub(pixels, IMAGENET_MEAN), IMAGENET_STD);
    const features = backbone.features(x, false);
    const y = head ? head.apply(features, false) : features;
    return [pixels.transpose([0, 3, 1, 2]).dataSync(), y.dataSync()];
  });
  const outputName = head ? 'logits' : 'features';
  const width = head ? c.classes : backbone.featureDim;
  await writeSafetensors(path.join(out, `${c.name}.expected.safetensors`), {
    image: { dtype: 'F32', shape: [3, 3, c.size, c.size], values: input },
    [outputName]: { dtype: 'F32', shape: [3, width], values: output },
  });
  written.push({
    name: c.name,
    model: `${c.name}.onnx`,
    expected: `${c.name}.expected.safetensors`,
    output: outputName,
    // float16 weights round every weight to 11 significant bits: compare relative to the output scale.
    tolerance: c.weights === 'float16' ? { relative: 1e-2 } : { absolute: 1e-4 },
  });
  head?.dispose();
  backbone.dispose();
  console.log(`wrote ${c.name}.onnx (${(bytes.length / 1e6).toFixed(1)} MB)`);
}
writeFileSync(path.join(out, 'cases.json'), `${JSON.stringify(written, null, 2)}\n`);
console.log(`wrote ${written.length} cases to ${out}`);
