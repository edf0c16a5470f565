/**
 * The compiled step of the two-view methods without a target network (SimCLR,
 * Barlow Twins, VICReg, SimSiam) against their eager step: one step from the same
 * weights and views, float32 (loss, metrics, embedding spread, updated weights,
 * BatchNorm running statistics and momentum) and bfloat16 (loss), and a flat
 * tensor count over several compiled steps. SimCLR runs both views through the
 * backbone as one batch; the others run one pass per view, so each BatchNorm layer
 * updates its running statistics twice in a step, the second from the first.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { barlowTwinsTask } from '../../pretext-tasks/barlow-twins.js';
import { byolTask } from '../../pretext-tasks/byol.js';
import { contrastiveTask } from '../../pretext-tasks/contrastive.js';
import { dinoTask } from '../../pretext-tasks/dino.js';
import { mocoTask } from '../../pretext-tasks/moco.js';
import { simsiamTask } from '../../pretext-tasks/simsiam.js';
import { vicregTask } from '../../pretext-tasks/vicreg.js';
import { cpuRunsBfloat16, graphRuntimeStatus } from '../../src/engine/graph-runtime.js';
import { initEngine } from '../../src/engine/index.js';
import type { OptimizerConfig } from '../../src/recipes/optimizer-schema.js';
import { compiledStepProblem } from '../../src/train/compiled-step.js';
import { createRng } from '../../src/util/rng.js';
import {
  type AnyTask,
  buildCompiledStep,
  compiledStepOnce,
  compiledThenEager,
  createStepFixture,
  eagerStep,
  expectEagerLossMetricsAndSpread,
  expectEveryTensorMoved,
  nesterovSgd,
  randomViews,
  relative,
  repeatCompiledStep,
} from '../support/compiled-step-harness.js';
import { maxRelativeDifference, restore, snapshot } from '../support/weight-compare.js';

beforeAll(() => {
  expect(initEngine({ quiet: true }).backend).toBe('tensorflow');
});

const status = graphRuntimeStatus();
const BATCH = 8; // images per view
const SIZE = 16;
const optimizer: OptimizerConfig = nesterovSgd(0.05);

/** The four tasks with small heads (the method's own losses and head shapes, narrower). */
/**
 * bfloat16 tolerance of the loss: relative, or absolute for SimSiam, whose loss is a mean
 * cosine in [-1, 1] near 0 at initialisation (bfloat16's 8 bits put ~0.004 on a cosine).
 */
type Tolerance = { relative: number } | { absolute: number };

const CASES: Array<{ task: AnyTask; options: object; metrics: string[]; bfloat16: Tolerance }> = [
  {
    task: contrastiveTask,
    options: contrastiveTask.validate({ temperature: 0.5, projectionDim: 16 }),
    metrics: ['accuracy'],
    bfloat16: { relative: 0.02 },
  },
  {
    task: barlowTwinsTask,
    options: barlowTwinsTask.validate({ projectionDim: 32, hiddenDim: 32, lambda: 0.0051 }),
    metrics: ['meanDiagonal'],
    bfloat16: { relative: 0.02 },
  },
  {
    task: vicregTask,
    options: vicregTask.validate({ projectionDim: 32, hiddenDim: 32 }),
    metrics: ['invariance', 'variance', 'covariance'],
    bfloat16: { relative: 0.02 },
  },
  {
    task: simsiamTask,
    options: simsiamTask.validate({ projectionDim: 32, hiddenDim: 32, predictorHiddenDim: 8 }),
    metrics: ['viewCosine'],
    bfloat16: { absolute: 0.01 },
  },
];

/** A ResNet-18 at width 0.125, the task's heads, SGD with a non-zero momentum buffer, and two views of 8 images. */
function setUp(task: AnyTask, options: object) {
  const fixture = createStepFixture({ task, options, optimizer, momentumNoise: { rng: createRng(3), scale: 0.01 } });
  const { viewTensors } = randomViews(createRng(4), 2, BATCH, SIZE);
  return { ...fixture, viewTensors };
}

type Setup = ReturnType<typeof setUp>;

function buildCompiled(c: Setup, precision: 'float32' | 'bfloat16') {
  return buildCompiledStep(c, { precision, imageShape: [SIZE, SIZE, 3] });
}

/** The compiled step, then the eager one (the task's step() under step.ts's lossAndGradients, then optimizers.ts's SGD). */
function bothSteps(c: Setup, precision: 'float32' | 'bfloat16', lr: number) {
  return compiledThenEager(c.mirrored, {
    compiled: () =>
      compiledStepOnce(
        () => buildCompiled(c, precision),
        c.viewTensors,
        (step, views) => step.run(views, createRng(5), lr, true),
      ),
    eager: () => eagerStep(c, { viewTensors: c.viewTensors, lr, measure: true }),
  });
}

describe.skipIf(!status.available)('compiled two-view steps (graph addon)', () => {
  for (const { task, options, metrics, bfloat16 } of CASES) {
    describe(task.id, () => {
      const c = status.available ? setUp(task, options) : undefined;
      afterAll(() => c?.dispose());

      it('float32: the eager loss, metrics, embedding spread and updated weights, statistics and momentum', async () => {
        const { compiled, eager, before, afterCompiled, afterEager, ...tensors } = await bothSteps(
          c!,
          'float32',
          optimizer.lr,
        );
        expect(tensors.tensorsAfterCompiled).toBe(tensors.tensorsBefore);

        expectEagerLossMetricsAndSpread(compiled, eager, metrics);
        // The collapse alarm measures the same rows: view 1's pooled features.
        expect(compiled.embeddingDim).toBe(c!.backbone.featureDim);
        // Every variable moved (weights by the update, running statistics by BatchNorm)...
        expectEveryTensorMoved(before, afterCompiled, (name) => name.startsWith('momentum:'));
        // ... to where the eager step moved it, within float32 rounding.
        const { worst, value } = maxRelativeDifference(afterCompiled, afterEager);
        if (process.env.SELFSUP_PRINT_ERRORS) {
          console.log(
            `${task.id} float32 loss ${eager.loss} relative error ${relative(compiled.loss, eager.loss)}, worst weight ${worst} ${value}`,
          );
        }
        expect(value, worst).toBeLessThan(2e-3);
      });

      const stated = 'relative' in bfloat16 ? `${bfloat16.relative * 100}%` : `${bfloat16.absolute} absolute`;
      // TensorFlow runs bfloat16 graphs only on AVX-512 CPUs (chooseGraphPath refuses it elsewhere).
      it.skipIf(!cpuRunsBfloat16())(`bfloat16: the eager float32 loss within ${stated}`, async () => {
        const { compiled, eager } = await bothSteps(c!, 'bfloat16', optimizer.lr);
        // bfloat16 keeps 8 significant bits; the losses' own matrix products (NT-Xent's similarities,
        // Barlow Twins' cross-correlation, VICReg's covariances) run in bfloat16 too.
        const error =
          'relative' in bfloat16 ? relative(compiled.loss, eager.loss) : Math.abs(compiled.loss - eager.loss);
        if (process.env.SELFSUP_PRINT_ERRORS) console.log(`${task.id} bfloat16 loss error ${error}`);
        expect(error, `loss ${compiled.loss} vs ${eager.loss}`).toBeLessThan(
          'relative' in bfloat16 ? bfloat16.relative : bfloat16.absolute,
        );
      });

      it('keeps the tensor count flat over compiled steps, and its loss moves', () => {
        const { mirrored } = c!;
        const before = snapshot(mirrored);
        const step = buildCompiled(c!, 'float32');
        const { counts, losses } = repeatCompiledStep(
          step,
          c!.viewTensors,
          (views, i) => step.run(views, createRng(5), optimizer.lr, i === 0).loss,
          () => restore(mirrored, before),
        );
        expect(counts).toEqual([counts[0], counts[0], counts[0]]);
        expect(losses.every(Number.isFinite)).toBe(true);
        expect(losses[2]).not.toBe(losses[0]);
      });
    });
  }

  it('names why a two-view run cannot be compiled: Adam, and a task without a compiled step', () => {
    const c = setUp(vicregTask, CASES[2].options);
    try {
      const base = { task: vicregTask, taskOptions: c.options, backbone: c.backbone, heads: c.modules };
      expect(compiledStepProblem({ ...base, optimizer })).toBeUndefined();
      // LARS compiles (compiled-lars.test.ts); Adam and AdamW only where the caller feeds their update counts
      // (the pretraining loop and finetuning do: compiled-adam-pretrain.test.ts), not in the default list.
      expect(compiledStepProblem({ ...base, optimizer: { ...optimizer, name: 'lars' } })).toBeUndefined();
      expect(compiledStepProblem({ ...base, optimizer: { ...optimizer, name: 'adam' } })).toBe(
        'optimizer adam is not compiled yet (sgd, lars are)',
      );
      // BYOL, MoCo and DINO compile with their momentum target (compiled-momentum.test.ts).
      for (const other of [byolTask, mocoTask, dinoTask] as AnyTask[]) {
        expect(compiledStepProblem({ ...base, task: other, optimizer })).toBeUndefined();
      }
      expect(compiledStepProblem({ ...base, task: { ...dinoTask, compiled: undefined }, optimizer })).toBe(
        'task dino has no compiled step',
      );
    } finally {
      c.dispose();
    }
  });
});
