/**
 * The shipped recipes of the two-view methods with a compiled step (SimCLR,
 * Barlow Twins, VICReg, SimSiam) in the pretraining loop, shrunk to tiny noise
 * data: with `train.compile: on` they run compiled and give the eager losses, the
 * four LARS recipes with LARS in the graph (graph-lars.ts). BatchNorm's
 * num_batches_tracked counts backbone passes as the eager run does, and a compiled
 * run stopped and resumed gives the uninterrupted losses.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { graphRuntimeStatus } from '../../src/engine/graph-runtime.js';
import { initEngine } from '../../src/engine/index.js';
import type { PretrainRecipe } from '../../src/recipes/pretrain-schema.js';
import {
  expectEagerLosses,
  readCheckpoint,
  recipesOfTasks,
  runPretrain,
  shrinkRecipe,
  wholeAndResumed,
} from '../support/compiled-step-harness.js';
import { noiseSource } from '../support/noise-source.js';

beforeAll(() => {
  expect(initEngine({ quiet: true }).backend).toBe('tensorflow');
});

const recipeFiles = recipesOfTasks(['contrastive', 'barlow-twins', 'vicreg', 'simsiam']);

/** The recipe at test size: batch 4 per view, width 0.125, one epoch; task options, views, optimizer and schedule kept. */
const shrink = (file: string, train: Partial<PretrainRecipe['train']>) => shrinkRecipe(file, train);

async function run(r: PretrainRecipe, options: { maxSteps?: number; resume?: string } = {}) {
  const result = await runPretrain(r, {
    source: noiseSource(8, Math.round(r.input.size * 1.25), r.input.channels),
    tmpPrefix: 'selfsup-two-view-',
    maxSteps: options.maxSteps ?? 2,
    resume: options.resume,
  });
  // The checkpoint written when the run stopped records BatchNorm's num_batches_tracked.
  return { ...result, numBatchesTracked: readCheckpoint(result.runDir).state.numBatchesTracked as number };
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
        expectEagerLosses(compiled.losses, eager.losses, 2e-4, 1e-5);
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
      const { whole, rest, resumed } = await wholeAndResumed((options) => run(r, options), 2, 1);
      expect(resumed.length).toBe(2);
      for (let i = 0; i < 2; i++) expect(Math.abs(resumed[i] - whole.losses[i])).toBeLessThan(1e-5 * whole.losses[i]);
      expect(rest.numBatchesTracked).toBe(whole.numBatchesTracked);
    },
    300_000,
  );
});
