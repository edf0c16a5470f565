/**
 * ONNX export against selfsup's own eval-mode outputs, run in onnxruntime-node:
 * ResNet-18/50 with both stems, a gray half-width ResNet-34, dynamic
 * batch and spatial axes, float16 weights, a classifier head with softmax, the
 * written files and the errors.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHead, mlpBlocks } from '../../src/backbones/heads.js';
import { IMAGENET_MEAN, IMAGENET_STD } from '../../src/data/augment/presets.js';
import { initEngine } from '../../src/engine/backend.js';
import { exportBackbone, saveBackbone, saveBackboneOnnx } from '../../src/export/backbone-store.js';
import { readManifest } from '../../src/export/manifest.js';
import { backboneToOnnx, ONNX_OPSET } from '../../src/export/onnx.js';
import { decodeOnnxModel, ONNX_FLOAT16 } from '../../src/export/onnx-proto.js';
import { createRng } from '../../src/util/rng.js';
import {
  makeBackbone,
  maxAbsDifference,
  randomizeBatchNorm,
  randomPixels,
  runOnnx,
  selfsupOutput,
} from './onnx-helpers.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'selfsup-onnx-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
beforeAll(() => {
  expect(initEngine().backend).toBe('tensorflow');
});

const RGB = { mean: IMAGENET_MEAN, std: IMAGENET_STD };

describe('ONNX export matches selfsup (eval mode) in onnxruntime-node', () => {
  // Full width except the small-stem ResNet-50 (half width keeps the suite short;
  // scripts/onnx/check_onnx.py checks all four at full width in Python's onnxruntime).
  const cases = [
    { arch: 'resnet18', stem: 'small', size: 32, widthMultiplier: 1 },
    { arch: 'resnet18', stem: 'imagenet', size: 64, widthMultiplier: 1 },
    { arch: 'resnet50', stem: 'small', size: 32, widthMultiplier: 0.5 },
    { arch: 'resnet50', stem: 'imagenet', size: 64, widthMultiplier: 1 },
  ] as const;
  for (const { arch, stem, size, widthMultiplier } of cases) {
    it(`${arch}, ${stem} stem, width ${widthMultiplier}: features within 1e-4`, async () => {
      const backbone = makeBackbone(arch, { stem, widthMultiplier }, 11);
      try {
        const before = tf.memory().numTensors;
        const bytes = backboneToOnnx(backbone, { ...RGB, inputSize: size });
        expect(tf.memory().numTensors).toBe(before);
        const shape: [number, number, number, number] = [3, size, size, 3];
        const pixels = randomPixels(shape, 5);
        const ours = selfsupOutput(backbone, pixels, shape, RGB.mean, RGB.std);
        const { features } = await runOnnx(bytes, pixels, shape);
        expect(features.length).toBe(3 * backbone.featureDim);
        expect(maxAbsDifference(ours, features)).toBeLessThan(1e-4);
        // The comparison means something: features vary across images and are not tiny.
        expect(Math.max(...ours.map(Math.abs))).toBeGreaterThan(0.1);
      } finally {
        backbone.dispose();
      }
    });
  }

  it('a gray, half-width ResNet-34 without a fixed input size runs at any batch and image size', async () => {
    const backbone = makeBackbone('resnet34', { stem: 'small', inputChannels: 1, widthMultiplier: 0.5 }, 4);
    try {
      const norm = { mean: [0.286], std: [0.353] };
      const bytes = backboneToOnnx(backbone, { ...norm, inputSize: null });
      const input = decodeOnnxModel(bytes).graph.input[0];
      expect(input.type.tensor_type.shape.dim).toEqual([
        { dim_param: 'batch' },
        { dim_value: 1 },
        { dim_param: 'height' },
        { dim_param: 'width' },
      ]);
      for (const shape of [
        [1, 28, 28, 1],
        [4, 40, 36, 1],
      ] as [number, number, number, number][]) {
        const pixels = randomPixels(shape, shape[0]);
        const { features } = await runOnnx(bytes, pixels, shape);
        expect(maxAbsDifference(selfsupOutput(backbone, pixels, shape, norm.mean, norm.std), features)).toBeLessThan(
          1e-4,
        );
      }
    } finally {
      backbone.dispose();
    }
  });

  it('float16 weights: half the file, float32 input and output, close to float32', async () => {
    const backbone = makeBackbone('resnet18', { stem: 'small', widthMultiplier: 0.5 }, 8);
    try {
      const full = backboneToOnnx(backbone, { ...RGB, inputSize: 32 });
      const half = backboneToOnnx(backbone, { ...RGB, inputSize: 32, weights: 'float16' });
      expect(half.length).toBeLessThan(0.55 * full.length);
      const model = decodeOnnxModel(half);
      const weights = (model.graph.initializer ?? []).filter((t) => t.name.endsWith('.float16'));
      expect(weights.length).toBe((model.graph.initializer ?? []).length - 2); // all but mean/std
      expect(weights.every((t) => t.data_type === ONNX_FLOAT16)).toBe(true);
      expect(model.graph.input[0].type.tensor_type.elem_type).toBe(1);
      const shape: [number, number, number, number] = [2, 32, 32, 3];
      const pixels = randomPixels(shape, 2);
      const ours = selfsupOutput(backbone, pixels, shape, RGB.mean, RGB.std);
      const { features } = await runOnnx(half, pixels, shape);
      const scale = Math.max(...ours.map(Math.abs));
      const difference = maxAbsDifference(ours, features);
      expect(difference).toBeGreaterThan(0); // the weights really were rounded
      expect(difference).toBeLessThan(1e-2 * scale);
    } finally {
      backbone.dispose();
    }
  });

  it('a classifier head (Linear-BN-ReLU-Linear, BN folded) gives the same logits and softmax', async () => {
    const backbone = makeBackbone('resnet18', { stem: 'imagenet', widthMultiplier: 0.25 }, 6);
    const head = createHead(mlpBlocks([24], 5), backbone.featureDim, createRng(6), 'classifier');
    randomizeBatchNorm(head.variables());
    try {
      const bytes = backboneToOnnx(backbone, { ...RGB, inputSize: 64, head, softmax: true });
      const shape: [number, number, number, number] = [4, 64, 64, 3];
      const pixels = randomPixels(shape, 9);
      const logits = selfsupOutput(backbone, pixels, shape, RGB.mean, RGB.std, head);
      const out = await runOnnx(bytes, pixels, shape);
      expect(Object.keys(out).sort()).toEqual(['logits', 'probabilities']);
      expect(maxAbsDifference(logits, out.logits)).toBeLessThan(1e-4);
      const probabilities = tf.tidy(() => tf.softmax(tf.tensor2d(logits, [4, 5])).dataSync() as Float32Array);
      expect(maxAbsDifference(probabilities, out.probabilities)).toBeLessThan(1e-5);
    } finally {
      head.dispose();
      backbone.dispose();
    }
  });

  it('uses opset 13, folds every BatchNorm, and records how to feed it in the metadata', () => {
    const backbone = makeBackbone('resnet18', { stem: 'imagenet', widthMultiplier: 0.125 }, 1);
    try {
      const model = decodeOnnxModel(backboneToOnnx(backbone, { ...RGB, inputSize: 224 }));
      expect(model.opset_import).toEqual([{ domain: '', version: ONNX_OPSET }]);
      expect(ONNX_OPSET).toBe(13);
      const ops = new Set(model.graph.node.map((n) => n.op_type));
      expect([...ops].sort()).toEqual(
        ['Add', 'Conv', 'Div', 'Flatten', 'GlobalAveragePool', 'MaxPool', 'Relu', 'Sub'].sort(),
      );
      const metadata = Object.fromEntries((model.metadata_props ?? []).map((p) => [p.key, p.value]));
      expect(metadata).toMatchObject({
        input_layout: 'NCHW',
        input_range: '[0, 1]',
        channel_order: 'RGB',
        mean: JSON.stringify(IMAGENET_MEAN),
        std: JSON.stringify(IMAGENET_STD),
        input_size: '224',
        outputs: 'features',
      });
      expect(model.graph.output.map((o) => o.name)).toEqual(['features']);
    } finally {
      backbone.dispose();
    }
  });
});

describe('ONNX files', () => {
  it('exportBackbone writes model.onnx + manifest.json, or a single .onnx with its manifest beside', async () => {
    const backbone = makeBackbone('resnet18', { stem: 'small', inputChannels: 1, widthMultiplier: 0.125 }, 2);
    const source = path.join(work, 'backbone');
    await saveBackbone(backbone, source, { inputSize: 28, mean: [0.286], std: [0.353], pretextTask: 'rotation' });
    try {
      const dir = path.join(work, 'onnx-dir');
      const manifest = await exportBackbone(source, 'onnx', dir);
      expect(manifest).toMatchObject({ inputSize: 28, pretextTask: 'rotation', files: { model: 'model.onnx' } });
      expect(readManifest(path.join(dir, 'manifest.json')).files).toEqual({ model: 'model.onnx' });
      const bytes = readFileSync(path.join(dir, 'model.onnx'));
      const shape: [number, number, number, number] = [2, 28, 28, 1];
      const pixels = randomPixels(shape, 3);
      const { features } = await runOnnx(bytes, pixels, shape);
      expect(maxAbsDifference(selfsupOutput(backbone, pixels, shape, [0.286], [0.353]), features)).toBeLessThan(1e-4);
      const stored = JSON.parse(
        decodeOnnxModel(bytes).metadata_props!.find((p) => p.key === 'selfsup_manifest')!.value,
      );
      expect(stored).toMatchObject({ architecture: 'resnet18', pretextTask: 'rotation', mean: [0.286] });

      const file = path.join(work, 'r18.onnx');
      await exportBackbone(source, 'onnx', file, { dtype: 'F16' });
      expect(existsSync(path.join(work, 'r18.manifest.json'))).toBe(true);
      expect(decodeOnnxModel(readFileSync(file)).metadata_props).toContainEqual({ key: 'weights', value: 'float16' });
    } finally {
      backbone.dispose();
    }
  });

  it('rejects BF16 and heads it cannot express, naming the problem', async () => {
    await expect(
      exportBackbone(path.join(work, 'backbone'), 'onnx', path.join(work, 'x'), { dtype: 'BF16' }),
    ).rejects.toThrow('ONNX export stores F32 or F16 weights; BF16 is for safetensors only');
    const backbone = makeBackbone('resnet18', { stem: 'small', widthMultiplier: 0.125 }, 2);
    const head = createHead(
      [{ linear: 8 }, { l2normalize: true }, { linear: 3 }],
      backbone.featureDim,
      createRng(1),
      'x',
    );
    try {
      await expect(saveBackboneOnnx(backbone, path.join(work, 'y.onnx'), {}, { head })).rejects.toThrow(
        'head.x.1: ONNX export supports linear, batchNorm and relu head blocks, not l2normalize',
      );
      expect(existsSync(path.join(work, 'y.onnx'))).toBe(false);
    } finally {
      head.dispose();
      backbone.dispose();
    }
  });
});
