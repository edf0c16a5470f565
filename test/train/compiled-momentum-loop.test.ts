/**
 * The shipped BYOL, MoCo and DINO recipes in the pretraining loop, shrunk to tiny
 * noise data: with `train.compile: on` they run compiled (the momentum target, queue
 * and centre in the session; DINO's local views as a second image input) and give the
 * eager losses over two steps, the first with the EMA at the recipe's starting
 * momentum; the checkpoint written at the stop holds the target, queue and centre the
 * eager run holds, and the backbone's BatchNorm pass count. A compiled MoCo run stopped after one
 * step and resumed gives the uninterrupted losses, target and queue.
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

const recipeFiles = recipesOfTasks(['byol', 'moco', 'dino']);

/** The recipe at test size: batch 4 per view, width 0.125, one epoch of 2 steps; task options, views, optimizer kept. */
const shrink = (file: string, train: Partial<PretrainRecipe['train']>) => shrinkRecipe(file, train);

/** A tensor of the run's last checkpoint (checkpoint.ts's tensors.json + tensors.bin). */
function checkpointTensor(runDir: string, name: string): Float32Array | Int32Array {
  const { dir, tensors } = readCheckpoint(runDir);
  const tensor = tensors.get(name);
  if (!tensor) throw new Error(`the checkpoint in ${dir} has no tensor ${name}`);
  return tensor;
}

function run(r: PretrainRecipe, options: { maxSteps?: number; resume?: string } = {}) {
  return runPretrain(r, {
    source: noiseSource(8, Math.round(r.input.size * 1.25), r.input.channels),
    tmpPrefix: 'selfsup-momentum-',
    maxSteps: options.maxSteps ?? 2,
    resume: options.resume,
  });
}

/** Largest |a - b| over max |b|. */
function relativeError(a: Float32Array | Int32Array, b: Float32Array | Int32Array): number {
  let diff = 0;
  let scale = 1e-6;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff / scale;
}

const STATE_TENSORS = ['target.backbone.conv1.weight', 'target.heads.projection.head.projection.0.weight'];

describe('compiled BYOL, MoCo and DINO recipes', () => {
  it('covers a small-image and a 96 px recipe of each method', () => {
    expect(recipeFiles).toEqual([
      'byol-96.yaml',
      'byol-small.yaml',
      'dino-96.yaml',
      'dino-small.yaml',
      'moco-96.yaml',
      'moco-small.yaml',
    ]);
  });

  for (const file of recipeFiles) {
    it.skipIf(!graphRuntimeStatus().available)(
      `${file}: runs compiled with train.compile on, with the eager losses, target and queue`,
      async () => {
        expect(shrink(file, {}).train.optimizer.name).toBe('sgd');
        const eager = await run(shrink(file, { compile: 'off' }));
        const compiled = await run(shrink(file, { compile: 'on', precision: 'float32' }));
        expect(compiled.trainingStep).toBe('compiled graph, float32 (recipe.train.precision)');
        expect(eager.trainingStep.startsWith('eager step')).toBe(true);
        expect(compiled.losses.length).toBe(2);
        expectEagerLosses(compiled.losses, eager.losses, 2e-4, 1e-5);
        expect(compiled.counts).toEqual([compiled.counts[0], compiled.counts[0]]);
        const names = file.startsWith('moco')
          ? [...STATE_TENSORS, 'buffers.queue']
          : file.startsWith('dino')
            ? [...STATE_TENSORS, 'buffers.center']
            : STATE_TENSORS;
        for (const name of names) {
          const error = relativeError(checkpointTensor(compiled.runDir, name), checkpointTensor(eager.runDir, name));
          expect(error, name).toBeLessThan(1e-4);
        }
        // Every online backbone pass counted (BYOL: a pass per view; DINO: globals, then locals).
        const tracked = readCheckpoint(compiled.runDir).state.numBatchesTracked;
        expect(tracked).toBe(file.startsWith('moco') ? 2 : 4);
        expect(tracked).toBe(readCheckpoint(eager.runDir).state.numBatchesTracked);
        if (file.startsWith('moco')) {
          expect([...checkpointTensor(compiled.runDir, 'buffers.pointer')]).toEqual([8]);
          expect([...checkpointTensor(eager.runDir, 'buffers.pointer')]).toEqual([8]);
        }
      },
      300_000,
    );
  }

  it.skipIf(!graphRuntimeStatus().available)(
    'moco-small.yaml compiled, stopped after 1 step and resumed, gives the uninterrupted losses, target and queue',
    async () => {
      const r = shrink('moco-small.yaml', { compile: 'on', precision: 'float32' });
      const { whole, rest, resumed } = await wholeAndResumed((options) => run(r, options), 2, 1);
      expect(resumed.length).toBe(2);
      for (let i = 0; i < 2; i++) expect(resumed[i]).toBe(whole.losses[i]);
      for (const name of [...STATE_TENSORS, 'buffers.queue', 'buffers.pointer']) {
        expect(checkpointTensor(rest.runDir, name), name).toEqual(checkpointTensor(whole.runDir, name));
      }
    },
    300_000,
  );
});
