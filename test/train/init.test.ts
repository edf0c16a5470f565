/**
 * Continued pretraining (recipe.init): a SimCLR run starts from a rotation run's
 * backbone; with backboneLrMultiplier 0 during its warm epoch the backbone's
 * trained parameters stay exactly the imported ones while the head learns; with
 * multiplier 1 they move. Weights that do not fit the recipe's backbone are an
 * error naming what differs. Real tasks, ResNet and loader on tiny noise images.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getTask } from '../../pretext-tasks/registry.js';
import type { ImageSource, RawImage } from '../../src/data/types.js';
import { initEngine } from '../../src/engine/index.js';
import { readManifest } from '../../src/export/manifest.js';
import { entryToFloat32, readSafetensors } from '../../src/export/safetensors.js';
import { applyRecipeOverrides, loadPretrainRecipe } from '../../src/recipes/pretrain-recipe.js';
import type { PretrainRecipe } from '../../src/recipes/pretrain-schema.js';
import { pretrain, type TrainEvent } from '../../src/train/loop.js';
import { createRng } from '../../src/util/rng.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'selfsup-init-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
beforeAll(() => {
  expect(initEngine({ quiet: true }).backend).toBe('tensorflow');
});

function noiseSource(count: number, side: number, channels: 1 | 3): ImageSource {
  const rng = createRng(3);
  const images: RawImage[] = Array.from({ length: count }, () => {
    const data = new Uint8Array(side * side * channels);
    for (let i = 0; i < data.length; i++) data[i] = rng.int(256);
    return { data, width: side, height: side, channels };
  });
  return { size: count, load: async (index) => images[index], describe: (index) => `noise#${index}` };
}

function tiny(file: string): PretrainRecipe {
  const recipe = loadPretrainRecipe(path.join('recipes', file), getTask);
  recipe.data.batchSize = 4;
  recipe.data.workers = 0;
  recipe.data.cacheSize = null;
  recipe.backbone.widthMultiplier = 1 / 16;
  recipe.train.epochs = 1;
  recipe.train.maxStepsPerEpoch = 2;
  return recipe;
}

const source = noiseSource(8, 40, 1);
const backboneTensors = (runDir: string) =>
  readSafetensors(path.join(runDir, 'backbone', 'backbone.safetensors')).tensors;
const same = (a: string, b: string, key: string) =>
  Buffer.from(entryToFloat32(backboneTensors(a).get(key)!).buffer).equals(
    Buffer.from(entryToFloat32(backboneTensors(b).get(key)!).buffer),
  );

describe('continued pretraining (recipe.init / --init)', () => {
  let rotationRun: string;
  beforeAll(async () => {
    const recipe = tiny('rotation-small.yaml');
    recipe.input.channels = 1;
    recipe.input.mean = [0.5];
    recipe.input.std = [0.5];
    rotationRun = (await pretrain(recipe, { source, outDir: work, runId: 'rotation', progress: false })).runDir;
  });

  const simclr = (weights: string, multiplier: number, runId: string, events: TrainEvent[] = []) => {
    const recipe = applyRecipeOverrides(tiny('simclr-small.yaml'), { initWeights: weights });
    recipe.input.channels = 1;
    recipe.input.mean = [0.5];
    recipe.input.std = [0.5];
    recipe.init.backboneLrMultiplier = multiplier;
    recipe.init.warmEpochs = 1;
    return pretrain(recipe, { source, outDir: work, runId, progress: false, onEvent: (e) => events.push(e) });
  };

  it('starts from the weights; multiplier 0 in the warm epoch keeps the backbone parameters, 1 moves them', async () => {
    const frozen = await simclr(rotationRun, 0, 'frozen');
    expect(frozen.losses.length).toBe(2);
    for (const key of ['conv1.weight', 'layer4.1.conv2.weight', 'layer2.0.bn1.weight', 'layer3.0.downsample.1.bias']) {
      expect(same(frozen.runDir, rotationRun, key)).toBe(true);
    }
    // BatchNorm statistics still follow the new data (training-mode forward passes).
    expect(same(frozen.runDir, rotationRun, 'bn1.running_mean')).toBe(false);
    const manifest = readManifest(path.join(frozen.runDir, 'backbone', 'manifest.json'));
    expect(manifest.pretextTask).toBe('contrastive');
    expect(manifest.notes).toEqual({ initWeights: rotationRun });

    const moving = await simclr(rotationRun, 1, 'moving');
    expect(same(moving.runDir, rotationRun, 'conv1.weight')).toBe(false);
    // Same start, same data, same seed: the first loss is the frozen run's.
    expect(moving.losses[0]).toBe(frozen.losses[0]);
  });

  it('weights that do not fit the recipe backbone are an error naming the difference', async () => {
    const fixture = path.join('test', 'fixtures', 'torch', 'checkpoints', 'r18-zip.pth');
    await expect(simclr(fixture, 0.1, 'mismatch')).rejects.toThrow(
      /the weights are stem imagenet but small was asked for/,
    );
  });
});
