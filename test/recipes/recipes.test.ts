/**
 * Every pretraining recipe in recipes/ loads, validates, and runs two steps on
 * tiny generated data with the real task, ResNet and loader, giving the same
 * losses twice for the same seed. Only the budget is shrunk (batch size, width);
 * the task options, views, optimizer and schedule are the recipe's.
 */
import { mkdtempSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { getTask } from '../../pretext-tasks/registry.js';
import { validatePipeline } from '../../src/data/augment/pipeline.js';
import { initEngine } from '../../src/engine/index.js';
import { resolveInput, trainOptionsOf } from '../../src/finetune/recipe.js';
import { loadFinetuneRecipe } from '../../src/recipes/finetune-recipe.js';
import { readRecipeTree } from '../../src/recipes/load.js';
import { loadPretrainRecipe } from '../../src/recipes/pretrain-recipe.js';
import type { PretrainRecipe } from '../../src/recipes/pretrain-schema.js';
import { pretrain } from '../../src/train/loop.js';
import { noiseSource } from '../support/noise-source.js';

const RECIPES_DIR = path.resolve('recipes');
// Pretraining recipes are the top-level ones with a `task` (finetuning recipes have none).
const recipeFiles = readdirSync(RECIPES_DIR)
  .filter((f) => f.endsWith('.yaml') && 'task' in readRecipeTree(path.join(RECIPES_DIR, f)))
  .sort();

function shrink(recipe: PretrainRecipe): PretrainRecipe {
  const small = structuredClone(recipe);
  small.data.batchSize = 4;
  small.data.workers = 0;
  small.data.cacheSize = null;
  small.backbone.widthMultiplier = 0.125;
  small.train.epochs = 1;
  return small;
}

beforeAll(() => {
  expect(initEngine({ quiet: true }).backend).toBe('tensorflow');
});

describe('recipes/', () => {
  it('has one small-image and one 96+ px recipe per built-in task', () => {
    expect(recipeFiles).toEqual(
      expect.arrayContaining([
        'rotation-small.yaml',
        'simclr-small.yaml',
        'jigsaw-small.yaml',
        'rotation-96.yaml',
        'simclr-resnet18.yaml',
        'jigsaw-96.yaml',
      ]),
    );
  });

  for (const file of recipeFiles) {
    it(`${file}: two steps, same losses twice for the same seed`, async () => {
      const recipe = loadPretrainRecipe(path.join(RECIPES_DIR, file), getTask);
      expect(recipe.input.size).toBeGreaterThanOrEqual(file.includes('small') ? 28 : 96);
      const small = shrink(recipe);
      const source = noiseSource(8, Math.round(recipe.input.size * 1.25), recipe.input.channels, 1);
      const outDir = mkdtempSync(path.join(os.tmpdir(), 'selfsup-recipe-'));
      const counts: number[] = [];
      const runTwoSteps = async () =>
        (
          await pretrain(small, {
            source,
            outDir,
            maxSteps: 2,
            progress: false,
            onEvent: (e) => {
              if (e.type === 'step') counts.push(tf.memory().numTensors);
            },
          })
        ).losses;
      const first = await runTwoSteps();
      const second = await runTwoSteps();
      expect(first.length).toBe(2);
      // Tensor count flat across steps (and back to the same level for the second run).
      expect(counts).toEqual([counts[0], counts[0], counts[0], counts[0]]);
      expect(first.every(Number.isFinite)).toBe(true);
      expect(second).toEqual(first);
      // The 96 px recipes with multi-crop (DINO: 8 views) take a minute or more on a busy 2-core machine.
    }, 300_000);
  }
});

// Measurement recipes of bench/ (docs/results.md names them), pretraining and finetuning: they must
// keep loading as the shipped recipes they extend change.
describe('bench/recipes/', () => {
  const BENCH_DIR = path.resolve('bench/recipes');
  const files = readdirSync(BENCH_DIR).filter((f) => f.endsWith('.yaml'));
  it('holds at least one recipe', () => {
    expect(files.length).toBeGreaterThan(0);
  });
  for (const file of files) {
    const full = path.join(BENCH_DIR, file);
    if ('task' in readRecipeTree(full)) {
      it(`${file} loads and validates (pretraining)`, () => {
        const recipe = loadPretrainRecipe(full, getTask);
        expect(recipe.name).toBe(file.replace(/\.yaml$/, ''));
        expect(recipe.train.epochs).toBeGreaterThan(0);
      });
    } else {
      it(`${file} loads, validates and converts to training options (finetuning)`, () => {
        const recipe = loadFinetuneRecipe(full);
        expect(recipe.name).toBe(file.replace(/\.yaml$/, ''));
        const manifest = { inputSize: 28, mean: [0.286], std: [0.353] };
        const options = trainOptionsOf(recipe, resolveInput(recipe, 1, manifest), file);
        expect(options.stages.length).toBeGreaterThan(0);
        // Its views are valid pipelines at the backbone's size (the checks a run makes first).
        if (options.fixmatch) {
          expect(validatePipeline(options.fixmatch.weakView, 1, 'weak')).toEqual([28, 28, 1]);
          expect(validatePipeline(options.fixmatch.strongView, 1, 'strong')).toEqual([28, 28, 1]);
        }
      });
    }
  }
});
