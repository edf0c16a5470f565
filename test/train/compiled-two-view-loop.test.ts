/**
 * The shipped recipes of the two-view methods with a compiled step (SimCLR,
 * Barlow Twins, VICReg, SimSiam) in the pretraining loop, shrunk to tiny noise
 * data: with `train.compile: on` they run compiled and give the eager losses, the
 * four LARS recipes with LARS in the graph (graph-lars.ts). BatchNorm's
 * num_batches_tracked counts backbone passes as the eager run does, and a compiled
 * run stopped and resumed gives the uninterrupted losses.
 */
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { getTask } from '../../pretext-tasks/registry.js';
import { graphRuntimeStatus } from '../../src/engine/graph-runtime.js';
import { initEngine } from '../../src/engine/index.js';
import { readRecipeTree } from '../../src/recipes/load.js';
import { loadPretrainRecipe } from '../../src/recipes/pretrain-recipe.js';
import type { PretrainRecipe } from '../../src/recipes/pretrain-schema.js';
import { lastCheckpointName } from '../../src/train/checkpoint.js';
import { pretrain } from '../../src/train/loop.js';
import { noiseSource } from '../support/noise-source.js';

beforeAll(() => {
  expect(initEngine({ quiet: true }).backend).toBe('tensorflow');
});

const COMPILED_TWO_VIEW = ['contrastive', 'barlow-twins', 'vicreg', 'simsiam'];
const RECIPES_DIR = path.resolve('recipes');
const recipeFiles = readdirSync(RECIPES_DIR)
  .filter((f) => f.endsWith('.yaml'))
  .filter((f) => {
    const task = readRecipeTree(path.join(RECIPES_DIR, f)).task as { id?: string } | undefined;
    return task?.id !== undefined && COMPILED_TWO_VIEW.includes(task.id);
  })
  .sort();

/** The recipe at test size: batch 4 per view, width 0.125, one epoch; task options, views, optimizer and schedule kept. */
function shrink(file: string, train: Partial<PretrainRecipe['train']>): PretrainRecipe {
  const r = structuredClone(loadPretrainRecipe(path.join(RECIPES_DIR, file), getTask));
  r.data.batchSize = 4;
  r.data.workers = 0;
  r.data.cacheSize = null;
  r.backbone.widthMultiplier = 0.125;
  r.train.epochs = 1;
  Object.assign(r.train, train);
  return r;
}

async function run(r: PretrainRecipe, options: { maxSteps?: number; resume?: string } = {}) {
  const counts: number[] = [];
  let trainingStep = '';
  const result = await pretrain(r, {
    source: noiseSource(8, Math.round(r.input.size * 1.25), r.input.channels),
    outDir: mkdtempSync(path.join(os.tmpdir(), 'selfsup-two-view-')),
    maxSteps: options.maxSteps ?? 2,
    ...(options.resume ? { resume: options.resume } : {}),
    progress: false,
    onEvent: (e) => {
      if (e.type === 'start') trainingStep = e.trainingStep;
      if (e.type === 'step') counts.push(tf.memory().numTensors);
    },
  });
  // The checkpoint written when the run stopped records BatchNorm's num_batches_tracked.
  const last = lastCheckpointName(result.runDir) ?? 'none';
  const state = JSON.parse(readFileSync(path.join(result.runDir, 'checkpoints', last, 'state.json'), 'utf8'));
  return {
    losses: result.losses,
    counts,
    trainingStep,
    runDir: result.runDir,
    numBatchesTracked: state.numBatchesTracked as number,
  };
}

describe('compiled two-view recipes', () => {
  it('covers a small-image and a 96 px recipe of each of the four methods', () => {
    expect(recipeFiles).toEqual([
      'barlow-twins-96.yaml',
      'barlow-twins-small.yaml',
      'simclr-resnet18.yaml',
      'simclr-small.yaml',
      'simsiam-96.yaml',
      'simsiam-small.yaml',
      'vicreg-96.yaml',
      'vicreg-small.yaml',
    ]);
  });

  for (const file of recipeFiles) {
    it.skipIf(!graphRuntimeStatus().available)(
      `${file}: runs compiled with train.compile on, with the eager losses`,
      async () => {
        // The recipe as shipped (SGD or LARS), eager and compiled in float32.
        expect(['sgd', 'lars']).toContain(shrink(file, {}).train.optimizer.name);
        const eager = await run(shrink(file, { compile: 'off' }));
        const compiled = await run(shrink(file, { compile: 'on', precision: 'float32' }));
        expect(compiled.trainingStep).toBe('compiled graph, float32 (recipe.train.precision)');
        expect(compiled.losses.length).toBe(2);
        // float32 rounding differs between the graph and eager kernels; the second step's loss follows one update.
        for (let i = 0; i < 2; i++) {
          const error = Math.abs(compiled.losses[i] - eager.losses[i]);
          expect(error, `step ${i}: ${compiled.losses[i]} vs ${eager.losses[i]}`).toBeLessThan(
            Math.max(2e-4 * Math.abs(eager.losses[i]), 1e-5),
          );
        }
        expect(compiled.counts).toEqual([compiled.counts[0], compiled.counts[0]]);
        // One count per backbone call, as the eager backbone counts: per view except for SimCLR's one batch.
        expect(compiled.numBatchesTracked).toBe(eager.numBatchesTracked);
        expect(eager.numBatchesTracked).toBe(file.startsWith('simclr') ? 2 : 4);
      },
      300_000,
    );
  }

  it.skipIf(!graphRuntimeStatus().available)(
    'vicreg-small.yaml compiled, stopped after 1 step and resumed, gives the uninterrupted losses and count',
    async () => {
      const r = shrink('vicreg-small.yaml', { compile: 'on', precision: 'float32' });
      const whole = await run(r, { maxSteps: 2 });
      const first = await run(r, { maxSteps: 1 });
      const rest = await run(r, { maxSteps: 1, resume: first.runDir });
      const resumed = [...first.losses, ...rest.losses];
      expect(resumed.length).toBe(2);
      for (let i = 0; i < 2; i++) expect(Math.abs(resumed[i] - whole.losses[i])).toBeLessThan(1e-5 * whole.losses[i]);
      expect(rest.numBatchesTracked).toBe(whole.numBatchesTracked);
    },
    300_000,
  );
});
