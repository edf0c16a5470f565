/**
 * LARS in the compiled step (graph-lars.ts) against optimizers.ts's eager LARS: one
 * SimCLR step from the same weights and non-zero momentum buffers, with gradient
 * clipping and weight decay, Nesterov and not: the loss, the updated weights (adapted
 * convolution and linear weights, and the plain-rate BatchNorm parameters and biases)
 * and the momentum buffers. The same compiled step with SGD in LARS's place moves the
 * weights elsewhere, so the comparison can fail.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { contrastiveTask } from '../../pretext-tasks/contrastive.js';
import { graphRuntimeStatus } from '../../src/engine/graph-runtime.js';
import { initEngine } from '../../src/engine/index.js';
import type { OptimizerConfig } from '../../src/recipes/optimizer-schema.js';
import { createOptimizer } from '../../src/train/optimizers.js';
import { createRng } from '../../src/util/rng.js';
import {
  buildCompiledStep,
  compiledStepOnce,
  compiledThenEager,
  createStepFixture,
  eagerStep as eagerStepWith,
  randomViews,
} from '../support/compiled-step-harness.js';
import { restore, snapshot, worstUpdateError } from '../support/weight-compare.js';

beforeAll(() => {
  expect(initEngine({ quiet: true }).backend).toBe('tensorflow');
});

const status = graphRuntimeStatus();
const BATCH = 8;
const SIZE = 16;
const GRAD_CLIP = 5;
const lars: OptimizerConfig = {
  name: 'lars',
  lr: 0.3,
  momentum: 0.9,
  nesterov: false,
  weightDecay: 1e-4,
  betas: [0.9, 0.999],
  eps: 1e-8,
  trustCoefficient: 0.001,
};
const options = contrastiveTask.validate({ temperature: 0.5, projectionDim: 16 });

function setUp() {
  const rng = createRng(3);
  const fixture = createStepFixture({
    task: contrastiveTask,
    options,
    optimizer: lars,
    momentumNoise: { rng, scale: 1e-3 },
  });
  const { viewTensors } = randomViews(rng, 2, BATCH, SIZE);
  return { ...fixture, viewTensors };
}

type Setup = ReturnType<typeof setUp>;

/** One eager step with optimizers.ts's LARS (a fresh optimizer over the same momentum buffers' values). */
function eagerStep(c: Setup, config: OptimizerConfig): number {
  const optimizer = createOptimizer(config, c.params);
  try {
    const buffers = new Map(optimizer.stateVariables().map((s) => [s.name, s.variable]));
    tf.tidy(() => {
      for (const v of c.mirrored) buffers.get(`optimizer.momentum.${v.name}`)?.assign(v.momentum!);
    });
    const { loss } = eagerStepWith(c, {
      viewTensors: c.viewTensors,
      lr: config.lr,
      optimizer,
      gradClipNorm: GRAD_CLIP,
    });
    tf.tidy(() => {
      for (const v of c.mirrored) v.momentum?.assign(buffers.get(`optimizer.momentum.${v.name}`)!);
    });
    return loss;
  } finally {
    optimizer.dispose();
  }
}

function compiledStep(c: Setup, config: OptimizerConfig): number {
  return compiledStepOnce(
    () =>
      buildCompiledStep(c, {
        precision: 'float32',
        imageShape: [SIZE, SIZE, 3],
        optimizer: config,
        gradClipNorm: GRAD_CLIP,
      }),
    c.viewTensors,
    (step, views) => step.run(views, createRng(5), config.lr),
  ).loss;
}

describe.skipIf(!status.available)('compiled LARS (graph addon)', () => {
  const c = status.available ? setUp() : undefined;
  afterAll(() => c?.dispose());

  for (const nesterov of [false, true]) {
    it(`${nesterov ? 'Nesterov' : 'plain'} momentum: the eager LARS update of weights and buffers`, async () => {
      const config = { ...lars, nesterov };
      const { mirrored } = c!;
      const {
        compiled: compiledLoss,
        eager: eagerLoss,
        before,
        afterCompiled,
        afterEager,
        ...tensors
      } = await compiledThenEager(mirrored, {
        compiled: () => compiledStep(c!, config),
        eager: () => eagerStep(c!, config),
      });
      expect(tensors.tensorsAfterCompiled).toBe(tensors.tensorsBefore);
      compiledStep(c!, { ...config, name: 'sgd' });
      const afterSgd = snapshot(mirrored);
      restore(mirrored, before);

      expect(Math.abs(compiledLoss - eagerLoss) / eagerLoss).toBeLessThan(1e-4);
      // Adapted weights (convolutions, linear), plain-rate BatchNorm parameters and biases, buffers.
      const kinds = new Set(mirrored.filter((v) => v.trainable).map((v) => v.kind));
      for (const kind of ['conv', 'dense', 'bn-gamma', 'bn-beta', 'bias'] as const)
        expect(kinds.has(kind), kind).toBe(true);
      const error = worstUpdateError(before, afterCompiled, afterEager);
      if (process.env.SELFSUP_PRINT_ERRORS) console.log(`lars nesterov=${nesterov}: ${error.worst} ${error.value}`);
      expect(error.value, error.worst).toBeLessThan(1e-3);
      // SGD at LARS's rate moves the adapted weights far from where LARS moves them.
      const sgd = worstUpdateError(before, afterSgd, afterEager);
      expect(sgd.value).toBeGreaterThan(1);
    });
  }
});
