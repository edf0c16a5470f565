/**
 * The self-distillation and redundancy-reduction methods (BYOL, SimSiam, Barlow
 * Twins, VICReg, MoCo v2) train a small ResNet-18 (width 0.125, small stem) on a
 * fixed tiny batch through the loop's own step and task state: the loss goes
 * down, the tensor count is flat, the target moves and the queue fills.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { simclrView } from '../../pretext-tasks/augmentations.js';
import { barlowTwinsTask } from '../../pretext-tasks/barlow-twins.js';
import { byolTask } from '../../pretext-tasks/byol.js';
import { dinoTask, teacherTemperatureAt } from '../../pretext-tasks/dino.js';
import { mocoTask } from '../../pretext-tasks/moco.js';
import type { AnyPretextTask } from '../../pretext-tasks/registry.js';
import { simsiamTask } from '../../pretext-tasks/simsiam.js';
import { vicregTask } from '../../pretext-tasks/vicreg.js';
import { createBackbone } from '../../src/backbones/registry.js';
import { createLoader } from '../../src/data/loader.js';
import { initEngine } from '../../src/engine/backend.js';
import type { PretrainRecipe } from '../../src/recipes/pretrain-schema.js';
import { PRETRAIN_SCHEMA } from '../../src/recipes/pretrain-schema.js';
import { validate } from '../../src/recipes/schema.js';
import { createOptimizer } from '../../src/train/optimizers.js';
import { computeStep } from '../../src/train/step.js';
import { TaskState } from '../../src/train/task-state.js';
import { createRng } from '../../src/util/rng.js';
import { makeSource } from '../support/pretraining.js';
import { seededImages } from '../support/trainer.js';

const SIZE = 12;
const BATCH = 8;

interface Case {
  task: AnyPretextTask;
  options: object;
  steps: number;
  lr: number;
  /**
   * MoCo's loss on one repeated batch rises: the queue fills with keys of the
   * same images, which then act as hard negatives. Its learning is checked by
   * the recipe runs and the losses' reference tests instead.
   */
  lossFalls?: false;
  /** Local views of this side after the two global ones (multi-crop). */
  localViews?: number;
}

const small = { projectionDim: 16, hiddenDim: 32 };
const CASES: Case[] = [
  { task: byolTask, options: { ...small, momentum: 0.9 }, steps: 10, lr: 0.01 },
  { task: simsiamTask, options: { ...small, predictorHiddenDim: 8 }, steps: 10, lr: 0.01 },
  { task: barlowTwinsTask, options: small, steps: 10, lr: 0.01 },
  { task: vicregTask, options: small, steps: 10, lr: 0.01 },
  {
    task: dinoTask,
    options: { outputDim: 32, hiddenDim: 32, bottleneckDim: 8, momentum: 0.9, localViews: 2, localSize: 8 },
    steps: 10,
    lr: 0.01,
    localViews: 2,
  },
  { task: mocoTask, options: { ...small, queueSize: 24, momentum: 0.9 }, steps: 10, lr: 0.01, lossFalls: false },
];

const optimizerConfig = (lr: number) =>
  (
    validate(
      PRETRAIN_SCHEMA,
      { task: { id: 'x' }, train: { optimizer: { name: 'adamw', lr, weightDecay: 0 } } },
      'recipe',
    ) as PretrainRecipe
  ).train.optimizer;

/** Two views of a fixed batch (the second flipped and noisy), then `locals` 8 px crops of them. */
function fixedViews(rng: ReturnType<typeof createRng>, locals = 0): tf.Tensor4D[] {
  return tf.tidy(() => {
    const images = seededImages(BATCH, SIZE, 1, rng);
    const noise = tf.mul(tf.randomNormal(images.shape, 0, 1, 'float32', 5), 0.2);
    const second = tf.add(tf.reverse(images, 2), noise) as tf.Tensor4D;
    const crops = Array.from({ length: locals }, (_, i) =>
      tf.slice(i % 2 ? second : images, [0, i, i, 0], [-1, 8, 8, -1]),
    );
    return [images, second, ...crops].map((v) => tf.keep(v as tf.Tensor4D));
  });
}

beforeAll(() => {
  initEngine({ quiet: true });
  expect(tf.getBackend()).toBe('tensorflow');
});

describe('methods train on a tiny batch through the loop step', () => {
  for (const c of CASES) {
    it(`${c.task.id}: ${c.lossFalls === false ? '' : 'loss goes down, '}tensor count flat, state updated`, async () => {
      const rng = createRng(`methods/${c.task.id}`);
      const options = c.task.validate(c.options);
      const makeBackbone = (name: string) =>
        createBackbone('resnet18', { widthMultiplier: 0.125, stem: 'small', inputChannels: 1, rng: rng.derive(name) });
      const backbone = makeBackbone('backbone');
      const heads = c.task.createHeads(options, backbone.featureDim, rng.derive('heads'));
      const state = TaskState.create({
        task: c.task,
        taskOptions: options,
        backbone,
        heads,
        createBackbone: () => makeBackbone('target'),
        rng: rng.derive('state'),
      });
      const params = [backbone, ...Object.values(c.task.headModules(heads) as Record<string, typeof backbone>)].flatMap(
        (module, m) =>
          module
            .variables()
            .filter((v) => v.trainable)
            .map((v) => ({ name: `${m}.${v.name}`, variable: v.variable, kind: v.kind })),
      );
      const optimizer = createOptimizer(optimizerConfig(c.lr), params);
      const views = fixedViews(rng.derive('data'), c.localViews);
      const batch = {
        indices: Int32Array.from({ length: BATCH }, (_, i) => i),
        views: views.map((v) => ({ data: v.dataSync() as Float32Array, shape: v.shape })),
      };
      const firstTarget = state.target ? state.target.backbone.variables()[0].variable.dataSync().slice() : undefined;
      expect(firstTarget).toEqual(state.target ? backbone.variables()[0].variable.dataSync() : undefined);

      const losses: number[] = [];
      const counts: number[] = [];
      for (let i = 0; i < c.steps; i++) {
        const progress = { globalStep: i, totalSteps: c.steps, epoch: 0, epochs: 1, stepsPerEpoch: c.steps };
        const computed = await computeStep({
          task: c.task,
          taskOptions: options,
          backbone,
          heads,
          params,
          batch,
          rng: rng.derive('step'),
          gradClipNorm: 0,
          measureSpread: true,
          context: state.context(progress),
        });
        tf.tidy(() => optimizer.apply(computed.grads, c.lr));
        state.update(computed.bufferUpdates, progress);
        computed.dispose();
        expect(Number.isFinite(computed.loss)).toBe(true);
        losses.push(computed.loss);
        counts.push(tf.memory().numTensors);
      }
      // The optimizer creates its slots on the first step; from then on nothing accumulates.
      expect(new Set(counts.slice(1)).size).toBe(1);
      const firstTwo = (losses[0] + losses[1]) / 2;
      const lastTwo = (losses[c.steps - 1] + losses[c.steps - 2]) / 2;
      if (c.lossFalls !== false) expect(lastTwo, losses.join(', ')).toBeLessThan(firstTwo - 0.05 * Math.abs(firstTwo));

      if (state.target) {
        // The target moved, but not all the way to the online weights.
        const online = backbone.variables()[0].variable.dataSync();
        const target = state.target.backbone.variables()[0].variable.dataSync();
        expect(target).not.toEqual(firstTarget);
        expect(target).not.toEqual(online);
      }
      if (state.buffers.pointer) {
        // 10 steps of 8 keys into a queue of 24: the pointer went round to (80 mod 24).
        expect(Array.from(state.buffers.pointer.dataSync())).toEqual([80 % 24]);
        const norms = tf.tidy(() => tf.norm(state.buffers.queue, 'euclidean', 1).dataSync());
        for (const n of norms) expect(n).toBeCloseTo(1, 4);
      }

      optimizer.dispose();
      state.dispose();
      for (const head of Object.values(c.task.headModules(heads) as Record<string, { dispose(): void }>))
        head.dispose();
      backbone.dispose();
      tf.dispose(views);
    });
  }
});

describe('method options', () => {
  it('reject bad values naming the key', () => {
    expect(() => byolTask.validate({ momentum: 1.5 })).toThrow(
      'Expected a number >= 0 and <= 1 for task.options.momentum but received 1.5',
    );
    expect(() => byolTask.validate({ momentum: 0.99, momentumEnd: 0.9 })).toThrow(
      'Expected a number >= 0.99 and <= 1 for task.options.momentumEnd but received 0.9',
    );
    expect(() => barlowTwinsTask.validate({ lambda: -1 })).toThrow(
      'Expected a number >= 0 and <= 1 for task.options.lambda but received -1',
    );
    expect(() => vicregTask.validate({ varianceWeight: 'high' })).toThrow(
      'Expected a number >= 0 and <= 1000 for task.options.varianceWeight but received "high"',
    );
    expect(() => mocoTask.validate({ queueSize: 0 })).toThrow(
      'Expected an integer between 1 and 1048576 for task.options.queueSize but received 0',
    );
    expect(() => simsiamTask.validate({ predictorDim: 8 })).toThrow('Unknown key task.options.predictorDim');
  });

  it('DINO: teacher temperature warms up linearly per epoch, then stays', () => {
    const options = dinoTask.validate({
      warmupTeacherTemperature: 0.04,
      teacherTemperature: 0.07,
      warmupTeacherEpochs: 4,
    });
    const temperatures = [0, 1, 2, 3, 4, 10].map((epoch) => teacherTemperatureAt(options, epoch));
    expect(temperatures.map((t) => Number(t.toFixed(12)))).toEqual([0.04, 0.05, 0.06, 0.07, 0.07, 0.07]);
    expect(() => dinoTask.validate({ localSize: 4 })).toThrow(
      'Expected an integer >= 8 or "auto" for task.options.localSize but received 4',
    );
    // Views: two global of the input size, then the local ones.
    const views = dinoTask.views(dinoTask.validate({ localViews: 3 }), {
      size: 32,
      channels: 1,
      mean: [0.5],
      std: [0.5],
    });
    expect(views.map((v) => (v[0] as { size: number }).size)).toEqual([32, 32, 14, 14, 14]);
  });

  it('tasks with a target fail clearly outside the loop', () => {
    const rng = createRng('outside');
    const options = byolTask.validate(small);
    const backbone = createBackbone('resnet18', { widthMultiplier: 0.125, stem: 'small', inputChannels: 1, rng });
    const heads = byolTask.createHeads(options, backbone.featureDim, rng);
    tf.tidy(() => {
      const views = [tf.zeros([2, SIZE, SIZE, 1]), tf.zeros([2, SIZE, SIZE, 1])];
      expect(() => byolTask.step({ backbone, heads, views, training: true, rng }, options)).toThrow(
        'byol needs its momentum target (run it through the training loop)',
      );
    });
    heads.projection.dispose();
    heads.prediction.dispose();
    backbone.dispose();
  });
});

describe('multi-crop', () => {
  it('the loader delivers views of different sizes in one batch, each its own tensor', async () => {
    const source = makeSource(6, 20);
    const input = { size: 16, channels: 1 as const, mean: [0.5], std: [0.5] };
    const augmentation = { cropScale: [0.3, 1] as [number, number], colorJitterStrength: 0.5, blur: 'off' as const };
    const views = [
      simclrView(input, augmentation),
      simclrView(input, augmentation),
      simclrView({ ...input, size: 8 }, augmentation),
    ];
    const loader = createLoader(source, { batchSize: 3, views, channels: 1, seed: 1, epoch: 0, workers: 0 });
    const shapes: number[][][] = [];
    for await (const batch of loader) shapes.push(batch.views.map((v) => v.shape));
    expect(shapes).toEqual([
      [
        [3, 16, 16, 1],
        [3, 16, 16, 1],
        [3, 8, 8, 1],
      ],
      [
        [3, 16, 16, 1],
        [3, 16, 16, 1],
        [3, 8, 8, 1],
      ],
    ]);
  });
});
