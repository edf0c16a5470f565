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
import { ResNet } from '../../src/backbones/resnet.js';
import type { Head } from '../../src/backbones/types.js';
import { graphRuntimeStatus } from '../../src/engine/graph-runtime.js';
import { initEngine } from '../../src/engine/index.js';
import type { OptimizerConfig } from '../../src/recipes/optimizer-schema.js';
import { CompiledTrainingStep, type MirroredVariable } from '../../src/train/compiled-step.js';
import { createOptimizer, type TrainableParam } from '../../src/train/optimizers.js';
import { lossAndGradients } from '../../src/train/step.js';
import { createRng } from '../../src/util/rng.js';
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
  const backbone = new ResNet(
    { arch: 'resnet18', inputChannels: 3, widthMultiplier: 0.125, stem: 'small' },
    'kaiming',
    createRng(1),
  );
  const heads = contrastiveTask.createHeads(options, backbone.featureDim, createRng(2));
  const modules: Record<string, Head> = contrastiveTask.headModules(heads);
  const all: Array<{ name: string; variable: tf.Variable; trainable: boolean; kind: TrainableParam['kind'] }> = [];
  for (const v of backbone.variables()) all.push({ ...v, name: `backbone.${v.name}` });
  for (const [key, head] of Object.entries(modules))
    for (const v of head.variables()) all.push({ ...v, name: `heads.${key}.${v.name}` });
  const params: TrainableParam[] = all
    .filter((v) => v.trainable)
    .map((v) => ({ name: v.name, variable: v.variable, kind: v.kind }));
  const optimizer = createOptimizer(lars, params);
  const momentum = new Map(
    optimizer.stateVariables().map((s) => [s.name.slice('optimizer.momentum.'.length), s.variable] as const),
  );
  const rng = createRng(3);
  tf.tidy(() => {
    for (const m of momentum.values()) {
      m.assign(
        tf.tensor(
          Float32Array.from({ length: m.size }, () => rng.normal() * 1e-3),
          m.shape,
        ),
      );
    }
  });
  const mirrored: MirroredVariable[] = all.map((v) => ({ ...v, momentum: momentum.get(v.name) }));
  const view = () => Float32Array.from({ length: BATCH * SIZE * SIZE * 3 }, () => rng.uniform(-1, 1));
  const views = [view(), view()];
  const viewTensors = () => views.map((v) => tf.tensor4d(v, [BATCH, SIZE, SIZE, 3]));
  const dispose = () => {
    backbone.dispose();
    for (const head of Object.values(modules)) head.dispose();
    optimizer.dispose();
  };
  return { backbone, heads, modules, params, mirrored, viewTensors, dispose };
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
    const step = lossAndGradients(
      c.params,
      () =>
        tf.tidy(() => {
          const out = contrastiveTask.step(
            { backbone: c.backbone, heads: c.heads, views: c.viewTensors(), training: true, rng: createRng(5) },
            options,
          );
          return { loss: out.loss };
        }),
      GRAD_CLIP,
    );
    const loss = step.loss.dataSync()[0];
    tf.tidy(() => optimizer.apply(step.grads, config.lr));
    step.dispose();
    tf.tidy(() => {
      for (const v of c.mirrored) v.momentum?.assign(buffers.get(`optimizer.momentum.${v.name}`)!);
    });
    return loss;
  } finally {
    optimizer.dispose();
  }
}

function compiledStep(c: Setup, config: OptimizerConfig): number {
  const step = new CompiledTrainingStep({
    task: contrastiveTask,
    taskOptions: options,
    backbone: c.backbone,
    heads: c.modules,
    variables: c.mirrored,
    optimizer: config,
    gradClipNorm: GRAD_CLIP,
    imageShape: [SIZE, SIZE, 3],
    precision: 'float32',
    intraOpThreads: 1,
    interOpThreads: 1,
  });
  try {
    const views = c.viewTensors();
    const { loss } = step.run(views, createRng(5), config.lr);
    tf.dispose(views);
    step.pull();
    return loss;
  } finally {
    step.dispose();
  }
}

describe.skipIf(!status.available)('compiled LARS (graph addon)', () => {
  const c = status.available ? setUp() : undefined;
  afterAll(() => c?.dispose());

  for (const nesterov of [false, true]) {
    it(`${nesterov ? 'Nesterov' : 'plain'} momentum: the eager LARS update of weights and buffers`, () => {
      const config = { ...lars, nesterov };
      const { mirrored } = c!;
      const before = snapshot(mirrored);
      const tensors = tf.memory().numTensors;
      const compiledLoss = compiledStep(c!, config);
      expect(tf.memory().numTensors).toBe(tensors);
      const afterCompiled = snapshot(mirrored);
      restore(mirrored, before);
      const eagerLoss = eagerStep(c!, config);
      const afterEager = snapshot(mirrored);
      restore(mirrored, before);
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
