/**
 * Parity with torchvision: fixtures from scripts/torch/make_fixtures.py hold what
 * torchvision 0.14 computed for resnet18 / resnet50 (ImageNet stem, 64 px) and
 * resnet18 (small stem, 1 channel, 32 px) with formula-defined weights
 * (fixture-weights.ts regenerates them bit for bit). The weights go through the
 * real import path: a torchvision-layout .safetensors file -> loadBackbone.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, describe, expect, it } from 'vitest';
import { createBackbone } from '../../src/backbones/registry.js';
import type { ResNetArch, Stem } from '../../src/backbones/types.js';
import { initEngine } from '../../src/engine/backend.js';
import { loadBackbone } from '../../src/export/backbone-store.js';
import {
  entryToFloat32,
  readSafetensors,
  type SafetensorsInput,
  writeSafetensors,
} from '../../src/export/safetensors.js';
import { HWIO_TO_OIHW, transposeHost } from '../../src/export/torchvision.js';
import { makeTensor } from './fixture-weights.js';

const FIXTURES = path.join(import.meta.dirname, '..', 'fixtures', 'torch');
const work = mkdtempSync(path.join(os.tmpdir(), 'selfsup-parity-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Writes the formula weights of a torchvision model (with fc and num_batches_tracked) as a .safetensors file. */
async function writeTorchvisionWeights(file: string, arch: ResNetArch, stem: Stem, channels: 1 | 3): Promise<number> {
  const shapeSource = createBackbone(arch, { stem, inputChannels: channels, init: 'none' });
  const tensors: Record<string, SafetensorsInput> = {};
  for (const { name, variable, kind } of shapeSource.variables()) {
    const shape = kind === 'conv' ? HWIO_TO_OIHW.map((p) => variable.shape[p]) : [...variable.shape];
    tensors[name] = { dtype: 'F32', shape, values: makeTensor(name, shape) };
    if (kind === 'bn-var') {
      tensors[name.replace('running_var', 'num_batches_tracked')] = {
        dtype: 'I64',
        shape: [],
        values: BigInt64Array.of(5n),
      };
    }
  }
  const dim = shapeSource.featureDim;
  shapeSource.dispose();
  tensors['fc.weight'] = { dtype: 'F32', shape: [1000, dim], values: makeTensor('fc.weight', [1000, dim]) };
  tensors['fc.bias'] = { dtype: 'F32', shape: [1000], values: makeTensor('fc.bias', [1000]) };
  await writeSafetensors(file, tensors);
  return dim;
}

const CASES = ['resnet18-imagenet-c3-64px', 'resnet50-imagenet-c3-64px', 'resnet18-small-c1-32px'];

describe('parity with torchvision (eval and train mode)', () => {
  for (const name of CASES) {
    it(name, async () => {
      expect(initEngine().backend).toBe('tensorflow');
      const reference = readSafetensors(path.join(FIXTURES, `${name}.safetensors`));
      const meta = reference.metadata;
      const ref = (key: string) => entryToFloat32(reference.tensors.get(key)!);
      const arch = meta.arch as ResNetArch;
      const channels = Number(meta.input_channels) as 1 | 3;
      const size = Number(meta.input_size);
      const batch = Number(meta.batch);
      const file = path.join(work, `${name}.safetensors`);
      await writeTorchvisionWeights(file, arch, meta.stem as Stem, channels);

      // No --arch: architecture, stem and channels are read from the keys and conv1's shape.
      const { backbone, fc, manifest } = await loadBackbone(file);
      expect(manifest.architecture).toBe(arch);
      expect(manifest.stem).toBe(meta.stem);
      expect(manifest.inputChannels).toBe(channels);
      expect(fc?.outputDim).toBe(1000);
      expect((backbone as unknown as { numBatchesTracked: number }).numBatchesTracked).toBe(5);

      const before = tf.memory().numTensors;
      const inputNchw = makeTensor('input', [batch, channels, size, size]);
      const x = tf.tidy(
        () => tf.tensor4d(inputNchw, [batch, channels, size, size]).transpose([0, 2, 3, 1]) as tf.Tensor4D,
      );

      // Eval mode: running statistics.
      const [features, logits] = tf.tidy(() => {
        const f = backbone.features(x, false);
        const l = tf.add(tf.matMul(f, tf.tensor2d(fc!.weight, [fc!.inputDim, fc!.outputDim])), fc!.bias);
        return [f.dataSync().slice(), l.dataSync().slice()];
      });
      expect(maxAbsDiff(features, ref('eval.features'))).toBeLessThan(1e-4);
      expect(maxAbsDiff(logits, ref('eval.logits'))).toBeLessThan(1e-4);

      // Train mode: batch statistics, running-statistics update, gradients of sum(features * probe).
      const probe = makeTensor('probe', [batch, backbone.featureDim]);
      const named = new Map(backbone.variables().map((v) => [v.name, v.variable]));
      const watched = ['conv1.weight', 'layer1.0.bn1.weight', 'layer1.0.bn1.bias'];
      const { trainFeatures, grads } = tf.tidy(() => {
        let out: Float32Array = new Float32Array();
        const { grads: g } = tf.variableGrads(
          () => {
            const f = backbone.features(x, true);
            out = f.dataSync().slice() as Float32Array;
            return tf.sum(tf.mul(f, tf.tensor2d(probe, [batch, backbone.featureDim]))) as tf.Scalar;
          },
          watched.map((n) => named.get(n)!),
        );
        return {
          trainFeatures: out,
          grads: Object.fromEntries(watched.map((n, i) => [n, g[Object.keys(g)[i]].dataSync().slice()])),
        };
      });
      expect(maxAbsDiff(trainFeatures, ref('train.features'))).toBeLessThan(1e-4);
      for (const stat of [
        'bn1.running_mean',
        'bn1.running_var',
        'layer4.1.bn2.running_mean',
        'layer4.1.bn2.running_var',
      ]) {
        expect(maxAbsDiff(named.get(stat)!.dataSync(), ref(`train.${stat}`))).toBeLessThan(1e-4);
      }
      const conv1 = named.get('conv1.weight')!;
      const conv1Grad = transposeHost(grads['conv1.weight'] as Float32Array, conv1.shape, HWIO_TO_OIHW);
      // Gradients relative to their largest entry: after backpropagating through 50 layers, float32 sums in
      // another order (oneDNN's or Eigen's vs PyTorch's) differ by up to ~2e-3 of the scale; a wrong formula is O(1).
      const relative = (actual: ArrayLike<number>, key: string) => {
        const expected = ref(key);
        return maxAbsDiff(actual, expected) / Math.max(...Array.from(expected, Math.abs));
      };
      expect(relative(conv1Grad, 'grad.conv1.weight')).toBeLessThan(5e-3);
      expect(relative(grads['layer1.0.bn1.weight'], 'grad.layer1.0.bn1.weight')).toBeLessThan(5e-3);
      expect(relative(grads['layer1.0.bn1.bias'], 'grad.layer1.0.bn1.bias')).toBeLessThan(5e-3);

      x.dispose();
      expect(tf.memory().numTensors).toBe(before);
      backbone.dispose();
    });
  }
});
