import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rotationTask } from '../../pretext-tasks/rotation.js';
import { ResNet } from '../../src/backbones/resnet.js';
import type { Head } from '../../src/backbones/types.js';
import { cpuBfloat16Features, graphRuntimeStatus } from '../../src/engine/graph-runtime.js';
import { initEngine } from '../../src/engine/index.js';
import type { OptimizerConfig } from '../../src/recipes/optimizer-schema.js';
import { CompiledTrainingStep, compiledStepProblem, type MirroredVariable } from '../../src/train/compiled-step.js';
import { createOptimizer, type TrainableParam } from '../../src/train/optimizers.js';
import { lossAndGradients } from '../../src/train/step.js';
import { createRng } from '../../src/util/rng.js';
import { maxRelativeDifference, restore, snapshot, updateCosine, worstUpdateError } from '../support/weight-compare.js';

beforeAll(() => {
  expect(initEngine({ quiet: true }).backend).toBe('tensorflow');
});

const status = graphRuntimeStatus();
const optimizer: OptimizerConfig = {
  name: 'sgd',
  lr: 0.1,
  momentum: 0.9,
  nesterov: true,
  weightDecay: 5e-4,
  betas: [0.9, 0.999],
  eps: 1e-8,
  trustCoefficient: 0.001,
};
const taskOptions = rotationTask.validate({ mode: 'random-one' });

/** A narrow ResNet, rotation heads, SGD with a non-zero momentum buffer, and a batch of 8 images. */
function setUp(arch: 'resnet18' | 'resnet50' = 'resnet18', stem: 'small' | 'imagenet' = 'small', size = 16) {
  const backbone = new ResNet({ arch, inputChannels: 3, widthMultiplier: 0.125, stem }, 'kaiming', createRng(1));
  const heads = rotationTask.createHeads(taskOptions, backbone.featureDim, createRng(2));
  const modules: Record<string, Head> = rotationTask.headModules(heads);
  const params: TrainableParam[] = [];
  const all: Array<{ name: string; variable: tf.Variable; trainable: boolean; kind: TrainableParam['kind'] }> = [];
  for (const v of backbone.variables()) all.push({ ...v, name: `backbone.${v.name}` });
  for (const [key, head] of Object.entries(modules))
    for (const v of head.variables()) all.push({ ...v, name: `heads.${key}.${v.name}` });
  for (const v of all) if (v.trainable) params.push({ name: v.name, variable: v.variable, kind: v.kind });
  const sgd = createOptimizer(optimizer, params);
  const momentum = new Map(
    sgd.stateVariables().map((s) => [s.name.slice('optimizer.momentum.'.length), s.variable] as const),
  );
  // A momentum buffer that is not zero, so the update exercises it.
  tf.tidy(() => {
    const rng = createRng(3);
    for (const m of momentum.values()) {
      const values = Float32Array.from({ length: m.size }, () => rng.normal() * 0.01);
      m.assign(tf.tensor(values, m.shape));
    }
  });
  const mirrored: MirroredVariable[] = all.map((v) => ({ ...v, momentum: momentum.get(v.name) }));
  const rng = createRng(4);
  const images = Float32Array.from({ length: 8 * size * size * 3 }, () => rng.uniform(-1, 1));
  const dispose = () => {
    backbone.dispose();
    for (const head of Object.values(modules)) head.dispose();
    sgd.dispose();
  };
  return { backbone, heads, modules, params, sgd, mirrored, images, size, dispose };
}

describe.skipIf(!status.available)('compiled training step (graph addon)', () => {
  const ctx = status.available ? setUp() : undefined;
  afterAll(() => ctx?.dispose());

  /** One eager step (the reference): loss and gradients as step.ts, then the SGD update of optimizers.ts. */
  function eagerStep(lr: number, c = ctx!) {
    const { backbone, heads, params, sgd, images, size } = c;
    const grads = lossAndGradients(
      params,
      () =>
        tf.tidy(() => {
          const views = [tf.tensor4d(images, [8, size, size, 3])];
          const out = rotationTask.step({ backbone, heads, views, training: true, rng: createRng(5) }, taskOptions);
          return { loss: out.loss };
        }),
      0,
    );
    const loss = grads.loss.dataSync()[0];
    tf.tidy(() => sgd.apply(grads.grads, lr));
    grads.dispose();
    return loss;
  }

  function compiledStep(precision: 'float32' | 'bfloat16', lr: number, c = ctx!) {
    const { backbone, modules, mirrored, images, size } = c;
    const step = new CompiledTrainingStep({
      task: rotationTask,
      taskOptions,
      backbone,
      heads: modules,
      variables: mirrored,
      optimizer,
      gradClipNorm: 0,
      imageShape: [size, size, 3],
      precision,
      intraOpThreads: 1,
      interOpThreads: 1,
    });
    try {
      const view = tf.tensor4d(images, [8, size, size, 3]);
      const result = step.run([view], createRng(5), lr);
      view.dispose();
      step.pull();
      return result;
    } finally {
      step.dispose();
    }
  }

  it('gives the eager step loss and updated weights, BatchNorm statistics and momentum (float32)', () => {
    const { mirrored } = ctx!;
    const before = snapshot(mirrored);
    const tensors = tf.memory().numTensors;
    const compiled = compiledStep('float32', 0.1);
    const afterCompiled = snapshot(mirrored);
    expect(tf.memory().numTensors).toBe(tensors);
    restore(mirrored, before);
    const eagerLoss = eagerStep(0.1);
    const afterEager = snapshot(mirrored);
    restore(mirrored, before);

    expect(compiled.loss).toBeGreaterThan(0);
    expect(Math.abs(compiled.loss - eagerLoss)).toBeLessThan(1e-4 * Math.abs(eagerLoss));
    expect(compiled.metrics.accuracy).toBeGreaterThanOrEqual(0);
    // Every variable moved (weights by the update, running statistics by BatchNorm)...
    for (const [name, values] of afterCompiled) {
      if (name.startsWith('momentum:')) continue;
      const old = before.get(name)!;
      expect(
        values.some((x, i) => x !== old[i]),
        name,
      ).toBe(true);
    }
    // ... to where the eager step moved it, within float32 rounding.
    const { worst, value } = maxRelativeDifference(afterCompiled, afterEager);
    expect(value, worst).toBeLessThan(2e-3);
  });

  it('also for ResNet-50 with the ImageNet stem (7x7/2 conv, max pool, bottlenecks, float32)', () => {
    const c = setUp('resnet50', 'imagenet', 32);
    try {
      const before = snapshot(c.mirrored);
      const compiled = compiledStep('float32', 0.1, c);
      const afterCompiled = snapshot(c.mirrored);
      restore(c.mirrored, before);
      const eagerLoss = eagerStep(0.1, c);
      const afterEager = snapshot(c.mirrored);
      expect(Math.abs(compiled.loss - eagerLoss)).toBeLessThan(1e-4 * Math.abs(eagerLoss));
      const { worst, value } = maxRelativeDifference(afterCompiled, afterEager);
      expect(value, worst).toBeLessThan(2e-3);
    } finally {
      c.dispose();
    }
  });

  it.skipIf(cpuBfloat16Features().length === 0)('stays within bfloat16 tolerance with precision bfloat16', () => {
    const { mirrored } = ctx!;
    const before = snapshot(mirrored);
    const compiled = compiledStep('bfloat16', 0.1);
    const afterCompiled = snapshot(mirrored);
    restore(mirrored, before);
    const eagerLoss = eagerStep(0.1);
    const afterEager = snapshot(mirrored);
    restore(mirrored, before);
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
