import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBackbone } from '../../src/backbones/registry.js';
import type { Backbone } from '../../src/backbones/types.js';
import { initEngine } from '../../src/engine/backend.js';
import { exportBackbone, loadBackbone, saveBackbone, saveBackboneTfjs } from '../../src/export/backbone-store.js';
import { readManifest } from '../../src/export/manifest.js';
import { encodeSafetensors, readSafetensors } from '../../src/export/safetensors.js';
import { readLayersModel } from '../../src/export/tfjs-model.js';
import { backboneToStateDict } from '../../src/export/torchvision.js';
import { createRng } from '../../src/util/rng.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'selfsup-store-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
beforeAll(() => {
  expect(initEngine().backend).toBe('tensorflow');
});

/** A small trained-looking backbone: random convs and non-trivial BN statistics. */
function makeBackbone(seed: number): Backbone {
  const b = createBackbone('resnet18', { stem: 'small', inputChannels: 1, widthMultiplier: 0.125, seed });
  const rng = createRng(seed).derive('bn');
  for (const { variable, kind } of b.variables()) {
    if (kind === 'conv') continue;
    const values = Float32Array.from({ length: variable.size }, () =>
      kind === 'bn-var' ? 0.5 + rng.next() : kind === 'bn-gamma' ? 1 + 0.3 * rng.normal() : 0.2 * rng.normal(),
    );
    tf.tidy(() => variable.assign(tf.tensor(values, variable.shape)));
  }
  (b as unknown as { numBatchesTracked: number }).numBatchesTracked = 17;
  return b;
}

function expectSameWeights(a: Backbone, b: Backbone): void {
  const bv = new Map(b.variables().map((v) => [v.name, v.variable]));
  for (const { name, variable } of a.variables()) {
    const other = bv.get(name);
    expect(other, name).toBeDefined();
    expect(Buffer.from(other!.dataSync().buffer).equals(Buffer.from(variable.dataSync().buffer)), name).toBe(true);
  }
}

const extras = { inputSize: 28, pretextTask: 'rotation', dataFingerprint: 'sha256:abc', mean: [0.286], std: [0.353] };

describe('backbone directory', () => {
  it('saves and loads back bit for bit, with the manifest and safetensors metadata', async () => {
    const original = makeBackbone(1);
    const dir = path.join(work, 'bb');
    const manifest = await saveBackbone(original, dir, extras);
    expect(readdirSync(dir).sort()).toEqual(['backbone.safetensors', 'manifest.json']);
    const stored = readManifest(path.join(dir, 'manifest.json'));
    expect(stored).toMatchObject({
      architecture: 'resnet18',
      stem: 'small',
      inputChannels: 1,
      widthMultiplier: 0.125,
      featureDim: 64,
      inputSize: 28,
      mean: [0.286],
      std: [0.353],
      channelOrder: 'L',
      pretextTask: 'rotation',
      dataFingerprint: 'sha256:abc',
      numBatchesTracked: 17,
    });
    expect(stored.selfsupVersion).toBe(manifest.selfsupVersion);
    const file = readSafetensors(path.join(dir, 'backbone.safetensors'));
    expect(file.metadata).toMatchObject({
      format: 'pt',
      arch: 'resnet18',
      stem: 'small',
      input_channels: '1',
      input_size: '28',
    });
    expect(JSON.parse(file.metadata.mean)).toEqual([0.286]);
    expect(file.tensors.get('conv1.weight')!.shape).toEqual([8, 1, 3, 3]); // OIHW
    expect(file.tensors.get('layer1.0.bn1.num_batches_tracked')!.dtype).toBe('I64');

    const loaded = await loadBackbone(dir);
    expect(loaded.format).toBe('backbone-dir');
    expect(loaded.manifest.pretextTask).toBe('rotation');
    expectSameWeights(original, loaded.backbone);
    expect((loaded.backbone as unknown as { numBatchesTracked: number }).numBatchesTracked).toBe(17);
    loaded.backbone.dispose();
    original.dispose();
  });

  it('finds the backbone of a run directory (<run>/backbone or <run>/checkpoints/last/backbone)', async () => {
    const original = makeBackbone(2);
    const run = path.join(work, 'run-1');
    await saveBackbone(original, path.join(run, 'checkpoints', 'last', 'backbone'), extras);
    const loaded = await loadBackbone(run);
    expectSameWeights(original, loaded.backbone);
    loaded.backbone.dispose();
    // src/train's layout: checkpoints/last is a file naming the newest checkpoint directory
    const run2 = path.join(work, 'run-2');
    await saveBackbone(original, path.join(run2, 'checkpoints', 'ckpt-40', 'backbone'), extras);
    writeFileSync(path.join(run2, 'checkpoints', 'last'), 'ckpt-40\n');
    const fromPointer = await loadBackbone(run2);
    expectSameWeights(original, fromPointer.backbone);
    fromPointer.backbone.dispose();
    original.dispose();
    const empty = path.join(work, 'empty-run');
    mkdirSync(empty);
    await expect(loadBackbone(empty)).rejects.toThrow(
      `${empty}: no backbone found: looked for backbone.safetensors or model.json in the directory, backbone/, checkpoints/last/backbone/`,
    );
  });

  it('exports to safetensors and imports back bit for bit; F16 export rounds', async () => {
    const original = makeBackbone(3);
    const dir = path.join(work, 'bb3');
    await saveBackbone(original, dir, extras);
    const single = path.join(work, 'out', 'resnet18-small.safetensors');
    await exportBackbone(dir, 'safetensors', single);
    expect(existsSync(path.join(work, 'out', 'resnet18-small.manifest.json'))).toBe(true);
    const again = await loadBackbone(single); // a lone file: config from its keys, extras from __metadata__
    expectSameWeights(original, again.backbone);
    expect(again.manifest.inputSize).toBe(28);
    expect(again.manifest.pretextTask).toBe('rotation');
    again.backbone.dispose();

    const half = path.join(work, 'half');
    await exportBackbone(dir, 'safetensors', half, { dtype: 'F16' });
    expect(readSafetensors(path.join(half, 'backbone.safetensors')).tensors.get('conv1.weight')!.dtype).toBe('F16');
    const halfLoaded = await loadBackbone(half);
    const a = original.variables()[0].variable.dataSync();
    const b = halfLoaded.backbone.variables()[0].variable.dataSync();
    let maxRelative = 0;
    for (let i = 0; i < a.length; i++) maxRelative = Math.max(maxRelative, Math.abs(a[i] - b[i]) / Math.abs(a[i]));
    expect(maxRelative).toBeGreaterThan(0);
    expect(maxRelative).toBeLessThan(2 ** -11);
    halfLoaded.backbone.dispose();
    original.dispose();
  });
});

describe('torchvision files', () => {
  it('imports a file with fc (exposed separately) and checks --arch against the keys', async () => {
    const source = makeBackbone(4);
    const fc = {
      weight: Float32Array.from({ length: 64 * 5 }, (_, i) => Math.sin(i)),
      bias: Float32Array.from({ length: 5 }, (_, i) => i / 10),
      inputDim: 64,
      outputDim: 5,
    };
    const file = path.join(work, 'tv.safetensors');
    writeFileSync(file, encodeSafetensors(backboneToStateDict(source, { fc })));
    const loaded = await loadBackbone(file, { arch: 'resnet18' });
    expectSameWeights(source, loaded.backbone);
    expect(loaded.fc!.outputDim).toBe(5);
    expect(Array.from(loaded.fc!.weight)).toEqual(Array.from(fc.weight));
    expect(loaded.manifest.pretextTask).toBe('imported');
    loaded.backbone.dispose();
    await expect(loadBackbone(file, { arch: 'resnet50' })).rejects.toThrow(
      `${file}: the weights are arch resnet18 but resnet50 was asked for`,
    );
    await expect(loadBackbone(file, { stem: 'imagenet' })).rejects.toThrow('the weights are stem small but imagenet');
    source.dispose();
  });

  it('names missing keys and wrong shapes', async () => {
    const source = makeBackbone(5);
    const tensors = backboneToStateDict(source);
    delete tensors['layer3.1.conv2.weight'];
    const file = path.join(work, 'missing.safetensors');
    writeFileSync(file, encodeSafetensors(tensors));
    await expect(loadBackbone(file)).rejects.toThrow(
      `${file}: does not match a torchvision resnet18: missing 1 key(s) of resnet18: layer3.1.conv2.weight`,
    );
    source.dispose();
    const garbage = path.join(work, 'garbage.safetensors');
    writeFileSync(garbage, 'definitely not safetensors');
    await expect(loadBackbone(garbage, { arch: 'resnet18' })).rejects.toThrow(
      `${garbage}: not a valid safetensors file`,
    );
  });
});

describe('tfjs LayersModel', () => {
  it('exports model.json + weights.bin whose predictions equal the backbone, and imports back bit for bit', async () => {
    const original = makeBackbone(6);
    const dir = path.join(work, 'tfjs');
    await saveBackboneTfjs(original, dir, extras);
    expect(readdirSync(dir).sort()).toEqual(['manifest.json', 'model.json', 'weights.bin']);
    const modelJson = JSON.parse(readFileSync(path.join(dir, 'model.json'), 'utf8'));
    expect(modelJson.format).toBe('layers-model');
    expect(modelJson.userDefinedMetadata.selfsup.architecture).toBe('resnet18');

    const { model } = await readLayersModel(path.join(dir, 'model.json'));
    const rng = createRng(7);
    const x = tf.tensor4d(
      Float32Array.from({ length: 2 * 28 * 28 }, () => rng.normal()),
      [2, 28, 28, 1],
    );
    const [expected, actual] = tf.tidy(() => [
      original.features(x, false).dataSync().slice(),
      (model.predict(x) as tf.Tensor).dataSync().slice(),
    ]);
    let diff = 0;
    for (let i = 0; i < expected.length; i++) diff = Math.max(diff, Math.abs(expected[i] - actual[i]));
    expect(diff).toBeLessThan(1e-4);
    model.dispose();
    x.dispose();

    const loaded = await loadBackbone(dir);
    expect(loaded.format).toBe('tfjs');
    expectSameWeights(original, loaded.backbone);
    loaded.backbone.dispose();
    // tfjs -> safetensors -> load: still the same bits
    const back = path.join(work, 'from-tfjs');
    await exportBackbone(path.join(dir, 'model.json'), 'safetensors', back);
    const again = await loadBackbone(back);
    expectSameWeights(original, again.backbone);
    expect(again.manifest.dataFingerprint).toBe('sha256:abc');
    again.backbone.dispose();
    original.dispose();
  });

  it('builds the bottleneck / ImageNet-stem graph too (resnet50, max pool, downsample)', async () => {
    const original = createBackbone('resnet50', { widthMultiplier: 0.125, seed: 9 });
    const dir = path.join(work, 'tfjs50');
    await saveBackboneTfjs(original, dir, { inputSize: 64 });
    const { model } = await readLayersModel(path.join(dir, 'model.json'));
    expect(model.inputs[0].shape).toEqual([null, 64, 64, 3]);
    const rng = createRng(10);
    const x = tf.tensor4d(
      Float32Array.from({ length: 2 * 64 * 64 * 3 }, () => rng.normal()),
      [2, 64, 64, 3],
    );
    const [expected, actual] = tf.tidy(() => [
      original.features(x, false).dataSync().slice(),
      (model.predict(x) as tf.Tensor).dataSync().slice(),
    ]);
    expect(actual.length).toBe(2 * 64 * 4);
    let diff = 0;
    for (let i = 0; i < expected.length; i++) diff = Math.max(diff, Math.abs(expected[i] - actual[i]));
    expect(diff).toBeLessThan(1e-4);
    model.dispose();
    x.dispose();
    original.dispose();
  });

  it('rejects a model.json whose layers do not fit the architecture, leaking nothing', async () => {
    const original = makeBackbone(11);
    const dir = path.join(work, 'tfjs-wrong');
    await saveBackboneTfjs(original, dir);
    original.dispose();
    const modelFile = path.join(dir, 'model.json');
    const json = JSON.parse(readFileSync(modelFile, 'utf8'));
    json.userDefinedMetadata.selfsup.architecture = 'resnet34';
    writeFileSync(modelFile, JSON.stringify(json));
    const before = tf.memory().numTensors;
    await expect(loadBackbone(dir)).rejects.toThrow(`${modelFile}: has no layer "layer1.2.conv1"`);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('rejects truncated weights naming model.json', async () => {
    const original = makeBackbone(8);
    const dir = path.join(work, 'tfjs-cut');
    await saveBackboneTfjs(original, dir);
    original.dispose();
    const weights = path.join(dir, 'weights.bin');
    writeFileSync(weights, readFileSync(weights).subarray(0, 100));
    await expect(loadBackbone(dir)).rejects.toThrow(`${path.join(dir, 'model.json')}: weights hold 100 bytes`);
  });
});
