/**
 * Pretraining with Adam and AdamW on the compiled step (recipe.train.compile on):
 * rotation-small.yaml and vicreg-small.yaml shrunk to 8 noise images of 16 px and
 * width 0.125, two steps per epoch. Over three steps the compiled run gives the
 * eager losses, and its checkpoints hold the eager run's Adam moments and update
 * counts (each parameter's own `t`, as the eager optimizer counts them): after
 * three steps for rotation; after the first step for VICReg, whose later
 * gradients at this size amplify float32 rounding (its eager and compiled SGD
 * momentum buffers differ by up to 25% after three steps too). A compiled run
 * stopped after one step and resumed gives the uninterrupted losses and moments.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { graphRuntimeStatus } from '../../src/engine/graph-runtime.js';
import { initEngine } from '../../src/engine/index.js';
import type { PretrainRecipe } from '../../src/recipes/pretrain-schema.js';
import { checkpointName, lastCheckpointName } from '../../src/train/checkpoint.js';
import {
  expectEagerLosses,
  readCheckpoint as readCheckpointFiles,
  runPretrain,
  shrinkRecipe,
  wholeAndResumed,
} from '../support/compiled-step-harness.js';
import { noiseSource } from '../support/noise-source.js';

beforeAll(() => {
  expect(initEngine({ quiet: true }).backend).toBe('tensorflow');
});

const available = graphRuntimeStatus().available;

/** The recipe at test size with Adam or AdamW: 16 px, batch 4 of 8 images (2 steps per epoch), width 0.125. */
function shrink(file: string, name: 'adam' | 'adamw', train: Partial<PretrainRecipe['train']>): PretrainRecipe {
  return shrinkRecipe(file, train, (r) => {
    r.input.size = 16;
    r.train.epochs = 2;
    r.train.optimizer = { ...r.train.optimizer, name, lr: 0.001, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.05 };
    r.monitor.onlineProbe.enabled = false;
  });
}

interface Checkpoint {
  tensors: Map<string, Float32Array>;
  optimizer: { name: string; steps: number; paramSteps?: Record<string, number> };
}

/** A checkpoint of the run (the last by default): its float tensors (tensors.json + tensors.bin) and optimizer state. */
function readCheckpoint(runDir: string, name = lastCheckpointName(runDir) ?? 'none'): Checkpoint {
  const { tensors, dtypes, state } = readCheckpointFiles(runDir, name);
  const floats = [...tensors].filter(([key]) => dtypes.get(key) === 'float32') as Array<[string, Float32Array]>;
  return { tensors: new Map(floats), optimizer: state.optimizer as Checkpoint['optimizer'] };
}

async function run(r: PretrainRecipe, options: { maxSteps: number; resume?: string }) {
  const result = await runPretrain(r, {
    source: noiseSource(8, 20, r.input.channels),
    tmpPrefix: 'selfsup-adam-',
    maxSteps: options.maxSteps,
    resume: options.resume,
  });
  return { ...result, checkpoint: readCheckpoint(result.runDir) };
}

/** Largest |a - b| over max |b|. */
function relativeError(a: Float32Array, b: Float32Array): number {
  let diff = 0;
  let scale = 1e-12;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff / scale;
}

const maxAbs = (values: Float32Array) => values.reduce((a, x) => Math.max(a, Math.abs(x)), 0);

/** The Adam moments of a checkpoint (`optimizer.m.*`, `optimizer.v.*`). */
function moments(checkpoint: Checkpoint): Map<string, Float32Array> {
  return new Map([...checkpoint.tensors].filter(([name]) => /^optimizer\.[mv]\./.test(name)));
}

/**
 * Expects the compiled checkpoint's Adam moments within 1e-4 (relative to each tensor's
 * largest value) of the eager one's. A parameter whose gradient is zero in exact arithmetic
 * (VICReg's head biases before BatchNorm, and its last bias, which the loss centres away) has
 * a first moment of rounding noise (below 1e-6 of the largest): it is only checked to be
 * noise on both sides.
 */
function expectSameMoments(compiled: Checkpoint, eager: Checkpoint) {
  const e = moments(eager);
  const c = moments(compiled);
  expect(e.size).toBeGreaterThan(10);
  expect([...c.keys()]).toEqual([...e.keys()]);
  const params = [...e.keys()].filter((name) => name.startsWith('optimizer.m.')).map((name) => name.slice(12));
  const largest = Math.max(...params.map((p) => maxAbs(e.get(`optimizer.m.${p}`)!)));
  expect(largest).toBeGreaterThan(0);
  const noise = largest * 1e-6;
  let skipped = 0;
  for (const p of params) {
    if (maxAbs(e.get(`optimizer.m.${p}`)!) < noise) {
      expect(maxAbs(c.get(`optimizer.m.${p}`)!), `optimizer.m.${p} (rounding noise)`).toBeLessThan(noise);
      skipped++;
      continue;
    }
    for (const name of [`optimizer.m.${p}`, `optimizer.v.${p}`]) {
      expect(relativeError(c.get(name)!, e.get(name)!), name).toBeLessThan(1e-4);
    }
  }
  expect(skipped).toBeLessThanOrEqual(3);
}

const CASES = [
  { file: 'rotation-small.yaml', optimizer: 'adamw', momentsAfter: 3 },
  { file: 'vicreg-small.yaml', optimizer: 'adamw', momentsAfter: 1 },
  { file: 'rotation-small.yaml', optimizer: 'adam', momentsAfter: 3 },
] as const;

describe('compiled pretraining with Adam and AdamW', () => {
  for (const { file, optimizer, momentsAfter } of CASES) {
    it.skipIf(!available)(
      `${file} with ${optimizer}: compiled gives the eager losses, update counts and Adam moments after ${momentsAfter} step(s)`,
      async () => {
        // A checkpoint after every step (kept), to compare the moments after the first.
        const train = { checkpointEverySteps: 1, keepCheckpoints: 5 };
        const eager = await run(shrink(file, optimizer, { ...train, compile: 'off' }), { maxSteps: 3 });
        const compiled = await run(shrink(file, optimizer, { ...train, compile: 'on', precision: 'float32' }), {
          maxSteps: 3,
        });
        expect(eager.trainingStep).toBe('eager step, float32 (recipe.train.compile is off)');
        expect(compiled.trainingStep).toBe('compiled graph, float32 (recipe.train.precision)');
        expect(compiled.losses.length).toBe(3);
        expectEagerLosses(compiled.losses, eager.losses, 2e-4);
        // The weights moved: the losses differ from step to step.
        expect(new Set(compiled.losses).size).toBe(3);
        expect(compiled.counts).toEqual([compiled.counts[0], compiled.counts[0], compiled.counts[0]]);
        // The same update counts (3 for every parameter the loss reaches) and the same moments.
        expect(compiled.checkpoint.optimizer).toEqual(eager.checkpoint.optimizer);
        expect(eager.checkpoint.optimizer).toEqual({ name: optimizer, steps: 3 });
        const at = checkpointName(momentsAfter);
        const eagerAt = readCheckpoint(eager.runDir, at);
        expect(eagerAt.optimizer).toEqual({ name: optimizer, steps: momentsAfter });
        expectSameMoments(readCheckpoint(compiled.runDir, at), eagerAt);
      },
      300_000,
    );
  }

  it.skipIf(!available)(
    'vicreg-small.yaml with adamw compiled, stopped after 1 step and resumed, gives the uninterrupted losses and moments',
    async () => {
      const r = shrink('vicreg-small.yaml', 'adamw', { compile: 'on', precision: 'float32' });
      const { whole, first, rest, resumed } = await wholeAndResumed((options) => run(r, options), 3, 1);
      expect(first.checkpoint.optimizer).toMatchObject({ name: 'adamw', steps: 1 });
      expect(rest.trainingStep).toBe('compiled graph, float32 (recipe.train.precision)');
      expect(resumed.length).toBe(3);
      for (let i = 0; i < 3; i++) {
        expect(Math.abs(resumed[i] - whole.losses[i]), `step ${i}`).toBeLessThan(1e-6 * Math.abs(whole.losses[i]));
      }
      expect(rest.checkpoint.optimizer).toEqual(whole.checkpoint.optimizer);
      expect(whole.checkpoint.optimizer).toEqual({ name: 'adamw', steps: 3 });
      const wholeMoments = moments(whole.checkpoint);
      const restMoments = moments(rest.checkpoint);
      expect(wholeMoments.size).toBeGreaterThan(10);
      for (const [name, values] of wholeMoments) {
        expect(relativeError(restMoments.get(name)!, values), name).toBeLessThan(1e-6);
      }
    },
    300_000,
  );
});
