import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rotationTask } from '../../pretext-tasks/rotation.js';
import { cpuBfloat16Features, graphRuntimeStatus } from '../../src/engine/graph-runtime.js';
import { initEngine } from '../../src/engine/index.js';
import type { OptimizerConfig } from '../../src/recipes/optimizer-schema.js';
import { compiledStepProblem } from '../../src/train/compiled-step.js';
import { createRng } from '../../src/util/rng.js';
import {
  buildCompiledStep,
  compiledStepOnce,
  compiledThenEager,
  createStepFixture,
  eagerStep,
  expectEveryTensorMoved,
  nesterovSgd,
  randomViews,
} from '../support/compiled-step-harness.js';
import { maxRelativeDifference, updateCosine, worstUpdateError } from '../support/weight-compare.js';

beforeAll(() => {
  expect(initEngine({ quiet: true }).backend).toBe('tensorflow');
});

const status = graphRuntimeStatus();
const optimizer: OptimizerConfig = nesterovSgd(0.1);
const taskOptions = rotationTask.validate({ mode: 'random-one' });

/** A narrow ResNet, rotation heads, SGD with a non-zero momentum buffer, and a batch of 8 images. */
function setUp(arch: 'resnet18' | 'resnet50' = 'resnet18', stem: 'small' | 'imagenet' = 'small', size = 16) {
  const fixture = createStepFixture({
    task: rotationTask,
    options: taskOptions,
    optimizer,
    backbone: { arch, inputChannels: 3, widthMultiplier: 0.125, stem },
    // A momentum buffer that is not zero, so the update exercises it.
    momentumNoise: { rng: createRng(3), scale: 0.01 },
  });
  const { viewTensors } = randomViews(createRng(4), 1, 8, size);
  return { ...fixture, viewTensors, size };
}

describe.skipIf(!status.available)('compiled training step (graph addon)', () => {
  const ctx = status.available ? setUp() : undefined;
  afterAll(() => ctx?.dispose());

  /** One eager step (the reference): loss and gradients as step.ts, then the SGD update of optimizers.ts. */
  function eager(lr: number, c = ctx!) {
    return eagerStep(c, { viewTensors: c.viewTensors, lr }).loss;
  }

  function compiledStep(precision: 'float32' | 'bfloat16', lr: number, c = ctx!) {
    return compiledStepOnce(
      () => buildCompiledStep(c, { precision, imageShape: [c.size, c.size, 3] }),
      c.viewTensors,
      (step, views) => step.run(views, createRng(5), lr),
    );
  }

  /** The compiled step, then the eager one, from the same weights; the weights are put back after each. */
  function bothSteps(precision: 'float32' | 'bfloat16', c = ctx!) {
    return compiledThenEager(c.mirrored, {
      compiled: () => compiledStep(precision, 0.1, c),
      eager: () => eager(0.1, c),
    });
  }

  it('gives the eager step loss and updated weights, BatchNorm statistics and momentum (float32)', async () => {
    const { compiled, eager: eagerLoss, before, afterCompiled, afterEager, ...tensors } = await bothSteps('float32');
    expect(tensors.tensorsAfterCompiled).toBe(tensors.tensorsBefore);

    expect(compiled.loss).toBeGreaterThan(0);
    expect(Math.abs(compiled.loss - eagerLoss)).toBeLessThan(1e-4 * Math.abs(eagerLoss));
    expect(compiled.metrics.accuracy).toBeGreaterThanOrEqual(0);
    // Every variable moved (weights by the update, running statistics by BatchNorm)...
    expectEveryTensorMoved(before, afterCompiled, (name) => name.startsWith('momentum:'));
    // ... to where the eager step moved it, within float32 rounding.
    const { worst, value } = maxRelativeDifference(afterCompiled, afterEager);
    expect(value, worst).toBeLessThan(2e-3);
  });

  it('also for ResNet-50 with the ImageNet stem (7x7/2 conv, max pool, bottlenecks, float32)', async () => {
    const c = setUp('resnet50', 'imagenet', 32);
    try {
      const { compiled, eager: eagerLoss, afterCompiled, afterEager } = await bothSteps('float32', c);
      expect(Math.abs(compiled.loss - eagerLoss)).toBeLessThan(1e-4 * Math.abs(eagerLoss));
      const { worst, value } = maxRelativeDifference(afterCompiled, afterEager);
      expect(value, worst).toBeLessThan(2e-3);
    } finally {
      c.dispose();
    }
  });

  it.skipIf(cpuBfloat16Features().length === 0)('stays within bfloat16 tolerance with precision bfloat16', async () => {
    const { compiled, eager: eagerLoss, before, afterCompiled, afterEager } = await bothSteps('bfloat16');
    // bfloat16 keeps 8 significant bits (relative step 2^-8). The forward pass stays close: loss within 1%,
    // BatchNorm running statistics within 5%, the head's update within 5%. Backward errors grow layer by layer
    // (BatchNorm gradients subtract nearly equal sums; here 8 values x 2 x 2 px per channel in layer4), so
    // the whole update is held to its direction: cosine with the float32 eager update at least 0.9.
    expect(Math.abs(compiled.loss - eagerLoss)).toBeLessThan(0.01 * Math.abs(eagerLoss));
    const running = (name: string) => name.includes('.running_');
    const stats = worstUpdateError(new Map([...before].filter(([name]) => running(name))), afterCompiled, afterEager);
    expect(stats.value, stats.worst).toBeLessThan(0.05);
    const head = worstUpdateError(
      new Map([...before].filter(([name]) => name.startsWith('heads.'))),
      afterCompiled,
      afterEager,
    );
    expect(head.value, head.worst).toBeLessThan(0.05);
    const weights = (name: string) => !running(name) && !name.startsWith('momentum:');
    const cosine = updateCosine(before, afterCompiled, afterEager, weights);
    expect(cosine).toBeGreaterThan(0.9);
  });

  it('names why a run cannot be compiled', () => {
    const { backbone, modules } = ctx!;
    expect(
      compiledStepProblem({
        task: rotationTask,
        taskOptions,
        backbone,
        heads: modules,
        optimizer: { ...optimizer, name: 'adam' },
      }),
    ).toBe('optimizer adam is not compiled yet (sgd, lars are)');
    expect(
      compiledStepProblem({
        task: rotationTask,
        taskOptions: { ...taskOptions, head: 'mlp' },
        backbone,
        heads: modules,
        optimizer,
      }),
    ).toBe('task rotation: only the linear head is compiled');
  });
});
