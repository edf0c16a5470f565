/**
 * The compiled step of the methods with a momentum target (BYOL, MoCo) against the
 * loop's eager step (step.ts's computeStep, the SGD update, then TaskState.update):
 * one step from the same online weights, momentum buffers, target weights (moved
 * off the online ones, so the EMA shows), queue and pointer (near the end of the
 * queue, so the enqueue wraps around), with a target momentum of 0.9-ish. float32:
 * loss, metric, embedding spread, online weights, target weights and statistics,
 * queue and pointer; bfloat16: the loss; and a flat tensor count over compiled steps.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { byolTask } from '../../pretext-tasks/byol.js';
import { dinoTask } from '../../pretext-tasks/dino.js';
import { mocoTask } from '../../pretext-tasks/moco.js';
import type { PretextTask, TrainingProgress } from '../../pretext-tasks/types.js';
import { ResNet, type ResNetConfig } from '../../src/backbones/resnet.js';
import type { Head } from '../../src/backbones/types.js';
import { graphRuntimeStatus } from '../../src/engine/graph-runtime.js';
import { initEngine } from '../../src/engine/index.js';
import type { OptimizerConfig } from '../../src/recipes/optimizer-schema.js';
import { CompiledTrainingStep, compiledStepProblem, type MirroredVariable } from '../../src/train/compiled-step.js';
import { createOptimizer, type TrainableParam } from '../../src/train/optimizers.js';
import { computeStep } from '../../src/train/step.js';
import { TaskState } from '../../src/train/task-state.js';
import { createRng } from '../../src/util/rng.js';
import { maxRelativeDifference, restore, snapshot, worstUpdateError } from '../support/weight-compare.js';

beforeAll(() => {
  expect(initEngine({ quiet: true }).backend).toBe('tensorflow');
});

const status = graphRuntimeStatus();
const BATCH = 8; // images per view
const SIZE = 16;
const QUEUE = 16; // two batches: the pointer at 12 wraps the enqueue around
const optimizer: OptimizerConfig = {
  name: 'sgd',
  lr: 0.05,
  momentum: 0.9,
  nesterov: true,
  weightDecay: 5e-4,
  betas: [0.9, 0.999],
  eps: 1e-8,
  trustCoefficient: 0.001,
};
// Step 2 of 5: momentum between start and end (BYOL 0.95 and MoCo 0.945 here).
const PROGRESS: TrainingProgress = { globalStep: 2, totalSteps: 5, epoch: 0, epochs: 1, stepsPerEpoch: 5 };

// biome-ignore lint/suspicious/noExplicitAny: each task has its own option and head types
type AnyTask = PretextTask<any, any>;

const CASES: Array<{ task: AnyTask; options: object; metrics: string[]; bfloat16: number }> = [
  {
    task: byolTask,
    options: byolTask.validate({ projectionDim: 16, hiddenDim: 32, momentum: 0.9, momentumEnd: 1 }),
    metrics: ['targetCosine'],
    bfloat16: 0.01,
  },
  {
    task: mocoTask,
    options: mocoTask.validate({
      projectionDim: 16,
      hiddenDim: 32,
      temperature: 0.2,
      queueSize: QUEUE,
      momentum: 0.9,
      momentumEnd: 0.99,
    }),
    metrics: ['accuracy'],
    bfloat16: 0.01,
  },
];

const CONFIG: ResNetConfig = { arch: 'resnet18', inputChannels: 3, widthMultiplier: 0.125, stem: 'small' };

/** A ResNet-18 at width 0.125, the task's heads and state, SGD with momentum buffers, and two views of 8 images. */
function setUp(task: AnyTask, options: object) {
  const backbone = new ResNet(CONFIG, 'kaiming', createRng(1));
  const heads = task.createHeads(options, backbone.featureDim, createRng(2));
  const modules: Record<string, Head> = task.headModules(heads);
  const all: Array<{ name: string; variable: tf.Variable; trainable: boolean; kind: TrainableParam['kind'] }> = [];
  for (const v of backbone.variables()) all.push({ ...v, name: `backbone.${v.name}` });
  for (const [key, head] of Object.entries(modules))
    for (const v of head.variables()) all.push({ ...v, name: `heads.${key}.${v.name}` });
  const params: TrainableParam[] = all
    .filter((v) => v.trainable)
    .map((v) => ({ name: v.name, variable: v.variable, kind: v.kind }));
  const sgd = createOptimizer(optimizer, params);
  const momentum = new Map(
    sgd.stateVariables().map((s) => [s.name.slice('optimizer.momentum.'.length), s.variable] as const),
  );
  const state = TaskState.create({
    task,
    taskOptions: options,
    backbone,
    heads,
    createBackbone: () => new ResNet(CONFIG, 'kaiming', createRng(6)),
    rng: createRng(7),
  });
  const rng = createRng(3);
  const noise = (v: tf.Variable, scale: number) =>
    v.assign(
      tf.add(
        v,
        tf.tensor(
          Float32Array.from({ length: v.size }, () => rng.normal() * scale),
          v.shape,
        ),
      ),
    );
  tf.tidy(() => {
    for (const m of momentum.values()) noise(m, 0.01);
    // The target a little off the online network, its pointer near the queue's end.
    for (const v of state.variables()) {
      if (v.name === 'buffers.pointer') v.variable.assign(tf.tensor1d([QUEUE - 4], 'int32'));
      else if (v.name.startsWith('target.')) noise(v.variable as tf.Variable, 0.01);
    }
  });
  const mirrored: MirroredVariable[] = all.map((v) => ({ ...v, momentum: momentum.get(v.name) }));
  const view = () => Float32Array.from({ length: BATCH * SIZE * SIZE * 3 }, () => rng.uniform(-1, 1));
  const views = [view(), view()];
  const viewTensors = () => views.map((v) => tf.tensor4d(v, [BATCH, SIZE, SIZE, 3]));
  const dispose = () => {
    backbone.dispose();
    for (const head of Object.values(modules)) head.dispose();
    sgd.dispose();
    state.dispose();
  };
  return { task, options, backbone, heads, modules, params, sgd, mirrored, state, views, viewTensors, dispose };
}

type Setup = ReturnType<typeof setUp>;

/** Copies of the task state's values (target weights and statistics, queue, pointer). */
function stateSnapshot(c: Setup): Map<string, Float32Array | Int32Array> {
  return new Map(c.state.variables().map((v) => [v.name, v.variable.dataSync().slice() as Float32Array | Int32Array]));
}

function stateRestore(c: Setup, values: Map<string, Float32Array | Int32Array>) {
  tf.tidy(() => {
    for (const v of c.state.variables()) {
      (v.variable as tf.Variable).assign(tf.tensor(values.get(v.name)!, v.variable.shape, v.variable.dtype));
    }
  });
}

/** The loop's eager step: computeStep, the SGD update, then the task state's update (buffers, EMA). */
async function eagerStep(c: Setup, lr: number) {
  const step = await computeStep({
    task: c.task,
    taskOptions: c.options,
    backbone: c.backbone,
    heads: c.heads,
    params: c.params,
    batch: {
      indices: Int32Array.from({ length: BATCH }, (_, i) => i),
      views: c.views.map((data) => ({ data, shape: [BATCH, SIZE, SIZE, 3] })),
    },
    rng: createRng(5),
    gradClipNorm: 0,
    measureSpread: true,
    context: c.state.context(PROGRESS),
  });
  tf.tidy(() => c.sgd.apply(step.grads, lr));
  c.state.update(step.bufferUpdates, PROGRESS);
  const result = { loss: step.loss, metrics: step.metrics, spread: step.spread };
  step.dispose();
  return result;
}

function buildCompiled(c: Setup, precision: 'float32' | 'bfloat16') {
  return new CompiledTrainingStep({
    task: c.task,
    taskOptions: c.options,
    backbone: c.backbone,
    heads: c.modules,
    variables: c.mirrored,
    optimizer,
    gradClipNorm: 0,
    imageShape: [SIZE, SIZE, 3],
    precision,
    intraOpThreads: 1,
    interOpThreads: 1,
    state: c.state.compiledState(),
  });
}

function compiledStep(c: Setup, precision: 'float32' | 'bfloat16', lr: number) {
  const step = buildCompiled(c, precision);
  try {
    const views = c.viewTensors();
    const result = step.run(views, createRng(5), lr, true, undefined, c.state.momentum(PROGRESS));
    tf.dispose(views);
    step.pull();
    return result;
  } finally {
    step.dispose();
  }
}

const relative = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(b), 1e-6);
const floats = (values: Map<string, Float32Array | Int32Array>) =>
  new Map([...values].filter(([, v]) => v instanceof Float32Array) as Array<[string, Float32Array]>);

describe.skipIf(!status.available)('compiled steps with a momentum target (graph addon)', () => {
  for (const { task, options, metrics, bfloat16 } of CASES) {
    describe(task.id, () => {
      const c = status.available ? setUp(task, options) : undefined;
      afterAll(() => c?.dispose());

      it('float32: the eager loss, metric, spread, online weights, target weights, queue and pointer', async () => {
        const { mirrored } = c!;
        const before = snapshot(mirrored);
        const stateBefore = stateSnapshot(c!);
        const m = c!.state.momentum(PROGRESS)!;
        expect(m).toBeGreaterThan(0.9);
        expect(m).toBeLessThan(1);
        const tensors = tf.memory().numTensors;
        const compiled = compiledStep(c!, 'float32', optimizer.lr);
        expect(tf.memory().numTensors).toBe(tensors);
        const afterCompiled = snapshot(mirrored);
        const stateCompiled = stateSnapshot(c!);
        restore(mirrored, before);
        stateRestore(c!, stateBefore);
        const eager = await eagerStep(c!, optimizer.lr);
        const afterEager = snapshot(mirrored);
        const stateEager = stateSnapshot(c!);
        restore(mirrored, before);
        stateRestore(c!, stateBefore);

        expect(Number.isFinite(eager.loss)).toBe(true);
        expect(relative(compiled.loss, eager.loss), `loss ${compiled.loss} vs ${eager.loss}`).toBeLessThan(1e-4);
        expect(Object.keys(compiled.metrics).sort()).toEqual([...metrics].sort());
        for (const name of metrics) {
          const error = Math.abs(compiled.metrics[name] - eager.metrics[name]);
          expect(error, `${name} ${compiled.metrics[name]} vs ${eager.metrics[name]}`).toBeLessThan(
            Math.max(1e-4 * Math.abs(eager.metrics[name]), 1e-5),
          );
        }
        expect(relative(compiled.spread, eager.spread)).toBeLessThan(1e-4);
        const online = maxRelativeDifference(afterCompiled, afterEager);
        expect(online.value, online.worst).toBeLessThan(2e-3);
        // Every target variable moved (weights by the EMA, running statistics by its BatchNorm) ...
        for (const [name, values] of stateCompiled) {
          if (name === 'buffers.pointer') continue;
          const old = stateBefore.get(name)!;
          expect(
            values.some((x, i) => x !== old[i]),
            name,
          ).toBe(true);
        }
        // ... to where the eager step moved it; the queue and pointer too.
        // The EMA moves a target weight by (1 - m)(online - target), small next to the weight: compare the moves.
        const target = worstUpdateError(floats(stateBefore), floats(stateCompiled), floats(stateEager));
        if (process.env.SELFSUP_PRINT_ERRORS) {
          console.log(
            `${task.id} float32 loss ${eager.loss} error ${relative(compiled.loss, eager.loss)}, online ${online.worst} ${online.value}, state ${target.worst} ${target.value}`,
          );
        }
        expect(target.value, target.worst).toBeLessThan(1e-3);
        if (stateBefore.has('buffers.pointer')) {
          expect([...stateCompiled.get('buffers.pointer')!]).toEqual([(QUEUE - 4 + BATCH) % QUEUE]);
          expect([...stateEager.get('buffers.pointer')!]).toEqual([(QUEUE - 4 + BATCH) % QUEUE]);
        }
      });

      it(`bfloat16: the eager float32 loss within ${bfloat16 * 100}%`, async () => {
        const { mirrored } = c!;
        const before = snapshot(mirrored);
        const stateBefore = stateSnapshot(c!);
        const compiled = compiledStep(c!, 'bfloat16', optimizer.lr);
        const stateCompiled = stateSnapshot(c!);
        const onlineCompiled = snapshot(mirrored);
        restore(mirrored, before);
        stateRestore(c!, stateBefore);
        const queue = stateBefore.get('buffers.queue');
        if (queue) {
          // The rows the enqueue does not replace (4..11: the keys went to 12..15 and 0..3) keep their float32 bits.
          const width = queue.length / QUEUE;
          const kept = (values: Float32Array | Int32Array) => [...values.slice(4 * width, 12 * width)];
          expect(kept(stateCompiled.get('buffers.queue')!)).toEqual(kept(queue));
        }
        const eager = await eagerStep(c!, optimizer.lr);
        const stateEager = stateSnapshot(c!);
        const onlineEager = snapshot(mirrored);
        restore(mirrored, before);
        stateRestore(c!, stateBefore);
        const error = relative(compiled.loss, eager.loss);
        // The EMA and the queue's new rows follow the bfloat16 step's online weights and keys.
        const moves = worstUpdateError(floats(stateBefore), floats(stateCompiled), floats(stateEager));
        const onlineMoves = worstUpdateError(before, onlineCompiled, onlineEager);
        if (process.env.SELFSUP_PRINT_ERRORS) {
          console.log(
            `${task.id} bfloat16 loss error ${error}, state moves ${moves.worst} ${moves.value}, online updates ${onlineMoves.worst} ${onlineMoves.value}`,
          );
        }
        // bfloat16 gradients put the online updates off the float32 ones (up to ~90% for BatchNorm biases at this
        // size); the target's moves, m-weighted towards those updates, are no further off than they are.
        expect(moves.value, moves.worst).toBeLessThanOrEqual(onlineMoves.value * 1.05);
        expect(error, `loss ${compiled.loss} vs ${eager.loss}`).toBeLessThan(bfloat16);
      });

      it('keeps the tensor count flat over compiled steps, and its loss moves', () => {
        const { mirrored } = c!;
        const before = snapshot(mirrored);
        const stateBefore = stateSnapshot(c!);
        const step = buildCompiled(c!, 'float32');
        const counts: number[] = [];
        const losses: number[] = [];
        try {
          for (let i = 0; i < 3; i++) {
            const views = c!.viewTensors();
            losses.push(step.run(views, createRng(5), optimizer.lr, i === 0, undefined, 0.9).loss);
            tf.dispose(views);
            counts.push(tf.memory().numTensors);
          }
        } finally {
          step.dispose();
          restore(mirrored, before);
          stateRestore(c!, stateBefore);
        }
        expect(counts).toEqual([counts[0], counts[0], counts[0]]);
        expect(losses.every(Number.isFinite)).toBe(true);
        expect(losses[2]).not.toBe(losses[0]);
      });
    });
  }

  it('names why a run cannot be compiled: a task whose compiled step does not run its state, a missing momentum', () => {
    const c = setUp(byolTask, CASES[0].options);
    try {
      const base = { task: byolTask, taskOptions: c.options, backbone: c.backbone, heads: c.modules, optimizer };
      expect(compiledStepProblem(base)).toBeUndefined();
      expect(compiledStepProblem({ ...base, task: dinoTask })).toBe('task dino has no compiled step');
      const { stateful: _, ...stateless } = byolTask.compiled!;
      expect(compiledStepProblem({ ...base, task: { ...byolTask, compiled: stateless } })).toBe(
        'task byol keeps state across steps (momentum target or buffers) that its compiled step does not run',
      );
      const step = buildCompiled(c, 'float32');
      const views = c.viewTensors();
      try {
        expect(() => step.run(views, createRng(5), optimizer.lr)).toThrow(
          "a compiled step with a momentum target needs the step's momentum in [0, 1], got undefined",
        );
      } finally {
        tf.dispose(views);
        step.dispose();
      }
    } finally {
      c.dispose();
    }
  });
});
