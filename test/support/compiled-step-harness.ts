/**
 * The shared scaffolding of the compiled-step tests (test/train/compiled-*.test.ts).
 *
 * One step: a narrow ResNet, a task's heads and an optimizer with non-zero momentum
 * buffers ({@link createStepFixture}); the compiled step built over them
 * ({@link buildCompiledStep}, run once by {@link compiledStepOnce}) and the eager
 * reference step ({@link eagerStep}); both from the same weights and batch
 * ({@link compiledThenEager}, with the weight snapshots of weight-compare.ts).
 *
 * The pretraining loop: a shipped recipe shrunk to test size ({@link shrinkRecipe}),
 * run on noise images recording the tensor count per step ({@link runPretrain}),
 * and its checkpoint tensors ({@link readCheckpoint}).
 */
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { expect } from 'vitest';
import { getTask } from '../../pretext-tasks/registry.js';
import type { PretextTask } from '../../pretext-tasks/types.js';
import { ResNet } from '../../src/backbones/resnet.js';
import type { BackboneConfig, Head } from '../../src/backbones/types.js';
import type { ImageSource } from '../../src/data/types.js';
import { readRecipeTree } from '../../src/recipes/load.js';
import type { OptimizerConfig } from '../../src/recipes/optimizer-schema.js';
import { loadPretrainRecipe } from '../../src/recipes/pretrain-recipe.js';
import type { PretrainRecipe } from '../../src/recipes/pretrain-schema.js';
import { lastCheckpointName } from '../../src/train/checkpoint.js';
import { embeddingSpread } from '../../src/train/collapse.js';
import {
  type CompiledStepResult,
  type CompiledStepSpec,
  CompiledTrainingStep,
  type MirroredVariable,
  type Precision,
} from '../../src/train/compiled-step.js';
import { pretrain } from '../../src/train/loop.js';
import { createOptimizer, type TrainableParam, type VariableOptimizer } from '../../src/train/optimizers.js';
import { lossAndGradients } from '../../src/train/step.js';
import { createRng, type Rng } from '../../src/util/rng.js';
import { restore, snapshot } from './weight-compare.js';

// biome-ignore lint/suspicious/noExplicitAny: each task has its own option and head types
export type AnyTask = PretextTask<any, any>;

/** The backbone of the step tests: ResNet-18 at width 0.125 with the small stem, 3 channels. */
export const NARROW_RESNET: BackboneConfig = {
  arch: 'resnet18',
  inputChannels: 3,
  widthMultiplier: 0.125,
  stem: 'small',
};

/** SGD with Nesterov momentum 0.9 and weight decay 5e-4 at rate `lr` (Adam's and LARS's fields at their defaults). */
export function nesterovSgd(lr: number): OptimizerConfig {
  return {
    name: 'sgd',
    lr,
    momentum: 0.9,
    nesterov: true,
    weightDecay: 5e-4,
    betas: [0.9, 0.999],
    eps: 1e-8,
    trustCoefficient: 0.001,
  };
}

/** |a - b| / |b| (|b| at least 1e-6). */
export const relative = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(b), 1e-6);

export interface StepFixture {
  task: AnyTask;
  options: object;
  /** The optimizer configuration of the fixture's optimizer (and of the compiled step by default). */
  optimizerConfig: OptimizerConfig;
  backbone: ResNet;
  heads: unknown;
  modules: Record<string, Head>;
  params: TrainableParam[];
  optimizer: VariableOptimizer;
  /** Every variable of the backbone (`backbone.*`) and heads (`heads.<module>.*`), with its momentum buffer. */
  mirrored: MirroredVariable[];
  dispose(): void;
}

/**
 * A ResNet (kaiming init, seed 1; {@link NARROW_RESNET} unless given), the task's heads (seed 2), the
 * optimizer over the trainable variables, and its momentum buffers set to `momentumNoise.scale` times
 * normal draws of `momentumNoise.rng`, so the update exercises them.
 */
export function createStepFixture(setup: {
  task: AnyTask;
  options: object;
  optimizer: OptimizerConfig;
  momentumNoise: { rng: Rng; scale: number };
  backbone?: BackboneConfig;
}): StepFixture {
  const { task, options } = setup;
  const backbone = new ResNet(setup.backbone ?? NARROW_RESNET, 'kaiming', createRng(1));
  const heads = task.createHeads(options, backbone.featureDim, createRng(2));
  const modules: Record<string, Head> = task.headModules(heads);
  const all: Array<{ name: string; variable: tf.Variable; trainable: boolean; kind: TrainableParam['kind'] }> = [];
  for (const v of backbone.variables()) all.push({ ...v, name: `backbone.${v.name}` });
  for (const [key, head] of Object.entries(modules))
    for (const v of head.variables()) all.push({ ...v, name: `heads.${key}.${v.name}` });
  const params: TrainableParam[] = all
    .filter((v) => v.trainable)
    .map((v) => ({ name: v.name, variable: v.variable, kind: v.kind }));
  const optimizer = createOptimizer(setup.optimizer, params);
  const momentum = new Map(
    optimizer.stateVariables().map((s) => [s.name.slice('optimizer.momentum.'.length), s.variable] as const),
  );
  const { rng, scale } = setup.momentumNoise;
  tf.tidy(() => {
    for (const m of momentum.values()) {
      m.assign(
        tf.tensor(
          Float32Array.from({ length: m.size }, () => rng.normal() * scale),
          m.shape,
        ),
      );
    }
  });
  const mirrored: MirroredVariable[] = all.map((v) => ({ ...v, momentum: momentum.get(v.name) }));
  const dispose = () => {
    backbone.dispose();
    for (const head of Object.values(modules)) head.dispose();
    optimizer.dispose();
  };
  return {
    task,
    options,
    optimizerConfig: setup.optimizer,
    backbone,
    heads,
    modules,
    params,
    optimizer,
    mirrored,
    dispose,
  };
}

/** `count` views of `batch` images of size x size x 3, uniform in [-1, 1] from `rng`, and fresh tensors of them. */
export function randomViews(rng: Rng, count: number, batch: number, size: number) {
  const views = Array.from({ length: count }, () =>
    Float32Array.from({ length: batch * size * size * 3 }, () => rng.uniform(-1, 1)),
  );
  const viewTensors = () => views.map((v) => tf.tensor4d(v, [batch, size, size, 3]));
  return { views, viewTensors };
}

/** A compiled step over the fixture's variables, one thread each way; the fixture's optimizer unless given. */
export function buildCompiledStep(
  f: StepFixture,
  spec: {
    precision: Precision;
    imageShape: [number, number, number];
    optimizer?: OptimizerConfig;
    gradClipNorm?: number;
    state?: CompiledStepSpec['state'];
  },
): CompiledTrainingStep {
  return new CompiledTrainingStep({
    task: f.task,
    taskOptions: f.options,
    backbone: f.backbone,
    heads: f.modules,
    variables: f.mirrored,
    optimizer: spec.optimizer ?? f.optimizerConfig,
    gradClipNorm: spec.gradClipNorm ?? 0,
    imageShape: spec.imageShape,
    precision: spec.precision,
    intraOpThreads: 1,
    interOpThreads: 1,
    ...(spec.state ? { state: spec.state } : {}),
  });
}

/** Builds a compiled step, runs it once on fresh view tensors (`run`), pulls its weights back, and disposes it. */
export function compiledStepOnce(
  build: () => CompiledTrainingStep,
  viewTensors: () => tf.Tensor[],
  run: (step: CompiledTrainingStep, views: tf.Tensor[]) => CompiledStepResult,
): CompiledStepResult {
  const step = build();
  try {
    const views = viewTensors();
    const result = run(step, views);
    tf.dispose(views);
    step.pull();
    return result;
  } finally {
    step.dispose();
  }
}

/**
 * Three runs of one compiled step on fresh view tensors (`run` returns the loss), with the tensor
 * count after each; then the step is disposed and `afterwards` called, whatever happened.
 */
export function repeatCompiledStep(
  step: CompiledTrainingStep,
  viewTensors: () => tf.Tensor[],
  run: (views: tf.Tensor[], index: number) => number,
  afterwards: () => void,
): { counts: number[]; losses: number[] } {
  const counts: number[] = [];
  const losses: number[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      const views = viewTensors();
      losses.push(run(views, i));
      tf.dispose(views);
      counts.push(tf.memory().numTensors);
    }
  } finally {
    step.dispose();
    afterwards();
  }
  return { counts, losses };
}

export interface EagerResult {
  loss: number;
  /** The task's metrics and the embedding spread (with `measure`; empty and NaN without). */
  metrics: Record<string, number>;
  spread: number;
}

/**
 * One eager step (the reference): the task's step() under step.ts's lossAndGradients, then the
 * optimizer's update (the fixture's unless given). With `measure` the metrics and the spread of the
 * embeddings are kept and read.
 */
export function eagerStep(
  f: StepFixture,
  run: {
    viewTensors: () => tf.Tensor[];
    lr: number;
    optimizer?: VariableOptimizer;
    gradClipNorm?: number;
    measure?: boolean;
  },
): EagerResult {
  const { task, options, backbone, heads, params } = f;
  const step = lossAndGradients(
    params,
    () =>
      tf.tidy(() => {
        const views = run.viewTensors();
        const out = task.step({ backbone, heads, views, training: true, rng: createRng(5) }, options);
        if (!run.measure) return { loss: out.loss };
        const keep: Record<string, tf.Tensor> = { spread: embeddingSpread(out.embeddings!) };
        for (const [name, value] of Object.entries(out.metrics)) keep[`metric:${name}`] = value;
        return { loss: out.loss, keep };
      }),
    run.gradClipNorm ?? 0,
  );
  const loss = step.loss.dataSync()[0];
  const metrics: Record<string, number> = {};
  for (const [key, value] of Object.entries(step.kept))
    if (key.startsWith('metric:')) metrics[key.slice('metric:'.length)] = value.dataSync()[0];
  const spread = step.kept.spread ? step.kept.spread.dataSync()[0] : Number.NaN;
  tf.tidy(() => (run.optimizer ?? f.optimizer).apply(step.grads, run.lr));
  step.dispose();
  return { loss, metrics, spread };
}

/** State beside the mirrored weights that a step changes (a task's target and queue): copied and put back. */
export interface Restorable<S> {
  snapshot(): S;
  restore(values: S): void;
}

/**
 * The compiled step, then the eager step, from the same weights (and `state`): snapshots of the
 * mirrored variables (weight-compare.ts's, momentum included) before and after each, put back to
 * `before` after each step; the tensor count just before the compiled step and just after it.
 */
export async function compiledThenEager<C, E, S = undefined>(
  mirrored: MirroredVariable[],
  sides: { compiled: () => C; eager: () => E | Promise<E>; state?: Restorable<S> },
) {
  const { state } = sides;
  const before = snapshot(mirrored);
  const stateBefore = state?.snapshot() as S;
  const tensorsBefore = tf.memory().numTensors;
  const compiled = sides.compiled();
  const tensorsAfterCompiled = tf.memory().numTensors;
  const afterCompiled = snapshot(mirrored);
  const stateCompiled = state?.snapshot() as S;
  restore(mirrored, before);
  state?.restore(stateBefore);
  const eager = await sides.eager();
  const afterEager = snapshot(mirrored);
  const stateEager = state?.snapshot() as S;
  restore(mirrored, before);
  state?.restore(stateBefore);
  return {
    compiled,
    eager,
    before,
    afterCompiled,
    afterEager,
    stateBefore,
    stateCompiled,
    stateEager,
    tensorsBefore,
    tensorsAfterCompiled,
  };
}

/** Expects every tensor of `after` (except those `skip` names) to differ from `before` in some entry. */
export function expectEveryTensorMoved(
  before: Map<string, ArrayLike<number>>,
  after: Map<string, ArrayLike<number>>,
  skip: (name: string) => boolean = () => false,
) {
  for (const [name, values] of after) {
    if (skip(name)) continue;
    const old = before.get(name)!;
    expect(
      Array.prototype.some.call(values, (x: number, i: number) => x !== old[i]),
      name,
    ).toBe(true);
  }
}

/**
 * Expects the compiled step's loss (relative 1e-4), metric names and values (relative 1e-4, or
 * absolute 1e-5 for values near zero) and embedding spread (relative 1e-4) to be the eager step's.
 */
export function expectEagerLossMetricsAndSpread(
  compiled: CompiledStepResult,
  eager: EagerResult,
  metrics: readonly string[],
) {
  expect(Number.isFinite(eager.loss)).toBe(true);
  expect(relative(compiled.loss, eager.loss), `loss ${compiled.loss} vs ${eager.loss}`).toBeLessThan(1e-4);
  expect(Object.keys(compiled.metrics).sort()).toEqual([...metrics].sort());
  for (const name of metrics) {
    // Metrics near zero (VICReg's variance hinge) are held to an absolute 1e-5.
    const error = Math.abs(compiled.metrics[name] - eager.metrics[name]);
    expect(error, `${name} ${compiled.metrics[name]} vs ${eager.metrics[name]}`).toBeLessThan(
      Math.max(1e-4 * Math.abs(eager.metrics[name]), 1e-5),
    );
  }
  expect(relative(compiled.spread, eager.spread)).toBeLessThan(1e-4);
}

// ---- The pretraining loop on shipped recipes ----

export const RECIPES_DIR = path.resolve('recipes');

/** The shipped recipes (sorted file names) whose task is one of `taskIds`. */
export function recipesOfTasks(taskIds: readonly string[]): string[] {
  return readdirSync(RECIPES_DIR)
    .filter((f) => f.endsWith('.yaml'))
    .filter((f) => {
      const task = readRecipeTree(path.join(RECIPES_DIR, f)).task as { id?: string } | undefined;
      return task?.id !== undefined && taskIds.includes(task.id);
    })
    .sort();
}

/**
 * A shipped recipe at test size: batch 4 (per view), no loader workers or cache, width 0.125, one
 * epoch; then `edit`, then `train` over recipe.train. Task options, views, optimizer and schedule kept.
 */
export function shrinkRecipe(
  file: string,
  train: Partial<PretrainRecipe['train']>,
  edit: (r: PretrainRecipe) => void = () => {},
): PretrainRecipe {
  const r = structuredClone(loadPretrainRecipe(path.join(RECIPES_DIR, file), getTask));
  r.data.batchSize = 4;
  r.data.workers = 0;
  r.data.cacheSize = null;
  r.backbone.widthMultiplier = 0.125;
  r.train.epochs = 1;
  edit(r);
  Object.assign(r.train, train);
  return r;
}

/**
 * pretrain() on `source` into a new temporary folder (`tmpPrefix`), without progress output: its
 * losses, the tensor count after each step, the training step it chose and its run folder.
 */
export async function runPretrain(
  r: PretrainRecipe,
  options: { source: ImageSource; tmpPrefix: string; maxSteps: number; resume?: string },
) {
  const counts: number[] = [];
  let trainingStep = '';
  const result = await pretrain(r, {
    source: options.source,
    outDir: mkdtempSync(path.join(os.tmpdir(), options.tmpPrefix)),
    maxSteps: options.maxSteps,
    ...(options.resume ? { resume: options.resume } : {}),
    progress: false,
    onEvent: (e) => {
      if (e.type === 'start') trainingStep = e.trainingStep;
      if (e.type === 'step') counts.push(tf.memory().numTensors);
    },
  });
  return { losses: result.losses, counts, trainingStep, runDir: result.runDir };
}

/**
 * A run of `total` steps, and the same run stopped after `stopAfter` steps and resumed for the
 * rest (`run` starts a run; with `resume` it continues that run folder).
 */
export async function wholeAndResumed<R extends { losses: number[]; runDir: string }>(
  run: (options: { maxSteps: number; resume?: string }) => Promise<R>,
  total: number,
  stopAfter: number,
) {
  const whole = await run({ maxSteps: total });
  const first = await run({ maxSteps: stopAfter });
  const rest = await run({ maxSteps: total - stopAfter, resume: first.runDir });
  return { whole, first, rest, resumed: [...first.losses, ...rest.losses] };
}

/**
 * Expects each compiled loss within max(relative `relativeTolerance`, absolute `floor`) of the
 * eager loss of the same step.
 */
export function expectEagerLosses(compiled: number[], eager: number[], relativeTolerance: number, floor = 0) {
  for (let i = 0; i < compiled.length; i++) {
    const error = Math.abs(compiled[i] - eager[i]);
    expect(error, `step ${i}: ${compiled[i]} vs ${eager[i]}`).toBeLessThan(
      Math.max(relativeTolerance * Math.abs(eager[i]), floor),
    );
  }
}

/**
 * The tensors of a checkpoint of the run (the last by default; checkpoint.ts's tensors.json +
 * tensors.bin) by name, int32 ones as Int32Array and the others as Float32Array, with their
 * dtypes; and its state.json.
 */
export function readCheckpoint(runDir: string, name = lastCheckpointName(runDir) ?? 'none') {
  const dir = path.join(runDir, 'checkpoints', name);
  const index = JSON.parse(readFileSync(path.join(dir, 'tensors.json'), 'utf8')) as {
    tensors: Array<{ name: string; dtype: string; offset: number; length: number }>;
  };
  const bin = readFileSync(path.join(dir, 'tensors.bin'));
  const tensors = new Map<string, Float32Array | Int32Array>();
  const dtypes = new Map<string, string>();
  for (const entry of index.tensors) {
    const copy = new Uint8Array(bin.subarray(entry.offset, entry.offset + entry.length)).buffer;
    tensors.set(entry.name, entry.dtype === 'int32' ? new Int32Array(copy) : new Float32Array(copy));
    dtypes.set(entry.name, entry.dtype);
  }
  const state = JSON.parse(readFileSync(path.join(dir, 'state.json'), 'utf8'));
  return { dir, tensors, dtypes, state };
}
