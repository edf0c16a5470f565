/**
 * Finetuning's compiled step (src/finetune/compiled-finetune.ts) against the
 * eager step it replaces: one step from the same weights and batch gives the
 * same loss and updated weights, BatchNorm statistics and momentum (float32
 * within rounding; bfloat16 within a stated looser tolerance), for label-smoothed
 * cross-entropy, focal loss with class weights and gradient clipping, and a head
 * stage over a frozen backbone; the tensor count stays flat; and a compiled run
 * resumes after a checkpoint as the eager one does.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ResNet } from '../../src/backbones/resnet.js';
import { weakView } from '../../src/data/augment/presets.js';
import { cpuBfloat16Features, graphRuntimeStatus } from '../../src/engine/graph-runtime.js';
import { initEngine } from '../../src/engine/index.js';
import { Classifier } from '../../src/finetune/classifier.js';
import { CompiledFinetuneStep, compiledFinetuneProblem } from '../../src/finetune/compiled-finetune.js';
import { trainOptionsOf } from '../../src/finetune/recipe.js';
import {
  type LossSpec,
  supervisedLoss,
  type TrainContext,
  type TrainOptions,
  trainClassifier,
} from '../../src/finetune/train.js';
import { finetuneDefaults } from '../../src/recipes/finetune-recipe.js';
import type { OptimizerConfig } from '../../src/recipes/optimizer-schema.js';
import type { MetricsLog } from '../../src/train/metrics.js';
import { createOptimizer, type TrainableParam } from '../../src/train/optimizers.js';
import { lossAndGradients } from '../../src/train/step.js';
import { createRng } from '../../src/util/rng.js';
import { CLASSES, INPUT, quadrantSet } from '../support/labeled-sets.js';
import { maxRelativeDifference, updateCosine } from '../support/weight-compare.js';

beforeAll(() => {
  expect(initEngine({ quiet: true }).backend).toBe('tensorflow');
});

const status = graphRuntimeStatus();
const sgd: OptimizerConfig = {
  name: 'sgd',
  lr: 0.05,
  momentum: 0.9,
  nesterov: false,
  weightDecay: 5e-4,
  betas: [0.9, 0.999],
  eps: 1e-8,
  trustCoefficient: 0.001,
};
const BATCH = 8;

function createClassifier(seed = 3, hidden: number[] = []): Classifier {
  const rng = createRng(seed);
  const backbone = new ResNet(
    { arch: 'resnet18', inputChannels: 1, widthMultiplier: 0.125, stem: 'small' },
    'kaiming',
    rng.derive('backbone'),
  );
  return new Classifier(backbone, { input: INPUT, classNames: CLASSES, hidden }, rng.derive('head'));
}

/**
 * A classifier, its parameter groups (backbone at half the head's rate) and the optimizer with
 * non-zero state: momentum, or Adam moments with the head 3 updates ahead of the backbone.
 */
function setUp(trainable: 'all' | 'head' = 'all', config: OptimizerConfig = sgd, hidden: number[] = []) {
  const classifier = createClassifier(3, hidden);
  const params: TrainableParam[] = classifier
    .variables()
    .filter((v) => v.trainable && (trainable === 'all' || v.name.startsWith('head.')))
    .map((v) => ({ name: v.name, variable: v.variable, kind: v.kind, lrScale: v.name.startsWith('head.') ? 1 : 0.5 }));
  const optimizer = createOptimizer(config, params);
  tf.tidy(() => {
    const rng = createRng(4);
    for (const { name, variable } of optimizer.stateVariables()) {
      // Adam's second moment is a running mean of squares: keep it positive.
      const draw = name.startsWith('optimizer.v.') ? () => (rng.normal() * 0.01) ** 2 : () => rng.normal() * 0.01;
      variable.assign(tf.tensor(Float32Array.from({ length: variable.size }, draw), variable.shape));
    }
  });
  if (config.name !== 'sgd') {
    const paramSteps = Object.fromEntries(params.map((p) => [p.name, p.name.startsWith('head.') ? 3 : 0]));
    optimizer.restoreHostState({ steps: 3, paramSteps });
  }
  const set = quadrantSet(BATCH, 5);
  const images = tf.tidy(() => tf.tensor4d(set.pixels, [BATCH, INPUT.size, INPUT.size, 1]).sub(0.3).div(0.3));
  const dispose = () => {
    images.dispose();
    optimizer.dispose();
    classifier.dispose();
  };
  return { classifier, params, optimizer, config, images: images as tf.Tensor4D, labels: set.labels, dispose };
}
type Context = ReturnType<typeof setUp>;

const snapshot = (c: Context) =>
  new Map<string, Float32Array>([
    ...c.classifier.variables().map((v) => [v.name, v.variable.dataSync().slice() as Float32Array] as const),
    ...c.optimizer.stateVariables().map((v) => [v.name, v.variable.dataSync().slice() as Float32Array] as const),
  ]);

function restore(c: Context, values: Map<string, Float32Array>) {
  tf.tidy(() => {
    for (const v of [...c.classifier.variables(), ...c.optimizer.stateVariables()])
      v.variable.assign(tf.tensor(values.get(v.name)!, v.variable.shape));
  });
}

interface StepSetting {
  loss: LossSpec;
  classWeights?: number[];
  gradClipNorm: number;
  backboneTraining: boolean;
}

/** The eager reference: train.ts's loss and gradients, then the optimizer's update. */
function eagerStep(c: Context, s: StepSetting, lr: number): number {
  const labels = Int32Array.from(c.labels);
  const grads = lossAndGradients(
    c.params,
    () => {
      const logits = c.classifier.logits(c.images, s.backboneTraining, true);
      return { loss: supervisedLoss(logits, tf.tensor1d(labels, 'int32'), s.loss, s.classWeights) };
    },
    s.gradClipNorm,
  );
  const loss = grads.loss.dataSync()[0];
  tf.tidy(() => c.optimizer.apply(grads.grads, lr));
  grads.dispose();
  return loss;
}

function compiledStep(c: Context, s: StepSetting, precision: 'float32' | 'bfloat16', lr: number, steps = 1) {
  const step = new CompiledFinetuneStep({
    classifier: c.classifier,
    trained: c.params,
    optimizer: c.optimizer,
    optimizerConfig: c.config,
    gradClipNorm: s.gradClipNorm,
    loss: s.loss,
    classWeights: s.classWeights,
    backboneTraining: s.backboneTraining,
    precision,
  });
  try {
    const results = [];
    for (let i = 0; i < steps; i++) {
      results.push(step.run(c.images, c.labels, lr));
      step.countUpdate();
    }
    step.pull();
    return results;
  } finally {
    step.dispose();
  }
}

const smoothed: StepSetting = {
  loss: { type: 'cross-entropy', labelSmoothing: 0.1, gamma: 2 },
  gradClipNorm: 0,
  backboneTraining: true,
};
const focal: StepSetting = {
  loss: { type: 'focal', labelSmoothing: 0, gamma: 2 },
  classWeights: [0.5, 1, 2, 1.5],
  gradClipNorm: 0.5,
  backboneTraining: true,
};
const weightedHead: StepSetting = {
  loss: { type: 'cross-entropy', labelSmoothing: 0.05, gamma: 2 },
  classWeights: [2, 1, 1, 0.25],
  gradClipNorm: 0,
  backboneTraining: false,
};

describe.skipIf(!status.available)('compiled finetuning step (graph addon)', () => {
  const ctx = status.available ? setUp() : undefined;
  afterAll(() => ctx?.dispose());

  /** One compiled and one eager step from the same state; both end states, the state is restored. */
  function compare(c: Context, s: StepSetting, precision: 'float32' | 'bfloat16' = 'float32') {
    const before = snapshot(c);
    const counts = c.optimizer.hostState();
    const [compiled] = compiledStep(c, s, precision, c.config.lr);
    const afterCompiled = snapshot(c);
    const countsAfterCompiled = c.optimizer.hostState();
    restore(c, before);
    c.optimizer.restoreHostState(counts);
    const eagerLoss = eagerStep(c, s, c.config.lr);
    const afterEager = snapshot(c);
    const countsAfterEager = c.optimizer.hostState();
    restore(c, before);
    c.optimizer.restoreHostState(counts);
    // The compiled step counts its update where apply() counts it.
    expect(countsAfterCompiled).toEqual(countsAfterEager);
    return { before, compiled, afterCompiled, eagerLoss, afterEager, countsAfterCompiled };
  }

  for (const [name, setting] of [
    ['cross-entropy with label smoothing 0.1', smoothed],
    ['focal loss with class weights and gradient clipping', focal],
  ] as const) {
    it(`gives the eager loss, weights, BatchNorm statistics and momentum: ${name} (float32)`, () => {
      const { before, compiled, afterCompiled, eagerLoss, afterEager } = compare(ctx!, setting);
      expect(compiled.loss).toBeGreaterThan(0);
      // With a clip norm, the gradients are large enough to be clipped.
      if (setting.gradClipNorm > 0) expect(compiled.gradNorm).toBeGreaterThan(setting.gradClipNorm);
      expect(Math.abs(compiled.loss - eagerLoss)).toBeLessThan(1e-4 * Math.abs(eagerLoss));
      // Every variable moved: weights and momentum by the update, running statistics by BatchNorm.
      for (const [key, values] of afterCompiled) {
        const old = before.get(key)!;
        expect(
          values.some((x, i) => x !== old[i]),
          key,
        ).toBe(true);
      }
      const { worst, value } = maxRelativeDifference(afterCompiled, afterEager);
      expect(value, worst).toBeLessThan(2e-3);
    });
  }

  it('trains the head over a frozen backbone in evaluation mode (class weights, float32)', () => {
    const c = setUp('head');
    try {
      const { before, compiled, afterCompiled, eagerLoss, afterEager } = compare(c, weightedHead);
      expect(Math.abs(compiled.loss - eagerLoss)).toBeLessThan(1e-4 * Math.abs(eagerLoss));
      for (const [key, values] of afterCompiled) {
        const old = before.get(key)!;
        const moved = values.some((x, i) => x !== old[i]);
        // Only the head and its momentum move; the backbone's weights and running statistics stay.
        expect(moved, key).toBe(key.includes('head.'));
      }
      const { worst, value } = maxRelativeDifference(afterCompiled, afterEager);
      expect(value, worst).toBeLessThan(2e-3);
    } finally {
      c.dispose();
    }
  });

  it('an MLP head (linear, BatchNorm in training mode, ReLU, linear): the eager step (float32)', () => {
    const c = setUp('all', sgd, [16]);
    try {
      const { before, compiled, afterCompiled, eagerLoss, afterEager } = compare(c, smoothed);
      expect(Math.abs(compiled.loss - eagerLoss)).toBeLessThan(1e-4 * Math.abs(eagerLoss));
      // The head's BatchNorm moved its running statistics, as the eager head does.
      for (const key of ['head.classifier.1.running_mean', 'head.classifier.1.running_var']) {
        const old = before.get(key)!;
        expect(
          afterCompiled.get(key)!.some((x, i) => x !== old[i]),
          key,
        ).toBe(true);
      }
      const { worst, value } = maxRelativeDifference(afterCompiled, afterEager);
      expect(value, worst).toBeLessThan(2e-3);
    } finally {
      c.dispose();
    }
  });

  for (const config of [
    { ...sgd, name: 'adam' as const, lr: 0.001, weightDecay: 1e-3 },
    // Decoupled decay as large as the Adam step (lr x wd x |w| ~ lr x 0.5 x |w|), so its omission would show.
    { ...sgd, name: 'adamw' as const, lr: 0.01, weightDecay: 0.5 },
  ]) {
    it(`${config.name}: the eager update with per-parameter bias correction (float32)`, () => {
      const c = setUp('all', config);
      try {
        expect(c.optimizer.updateCount('head.classifier.0.weight')).toBe(3);
        expect(c.optimizer.updateCount('conv1.weight')).toBe(0);
        const { before, compiled, afterCompiled, eagerLoss, afterEager, countsAfterCompiled } = compare(c, smoothed);
        // Head 4 updates (as many as steps, so not listed), the backbone its first: different bias corrections in one step.
        expect(countsAfterCompiled.steps).toBe(4);
        expect(countsAfterCompiled.paramSteps?.['head.classifier.0.weight']).toBeUndefined();
        expect(countsAfterCompiled.paramSteps?.['conv1.weight']).toBe(1);
        expect(Math.abs(compiled.loss - eagerLoss)).toBeLessThan(1e-4 * Math.abs(eagerLoss));
        for (const [key, values] of afterCompiled) {
          const old = before.get(key)!;
          expect(
            values.some((x, i) => x !== old[i]),
            key,
          ).toBe(true);
        }
        // Adam divides by sqrt(v): a gradient entry near 0 makes its step sensitive to rounding, so the
        // update is compared as a whole (relative L2) as well as entry by entry against the tensor's scale.
        const { worst, value } = maxRelativeDifference(afterCompiled, afterEager);
        expect(value, worst).toBeLessThan(2e-3);
        expect(updateCosine(before, afterCompiled, afterEager, (k) => !k.includes('.running_'))).toBeGreaterThan(
          0.99999,
        );
        // Each weight tensor's update, ||compiled - eager|| / ||eager update||.
        let worstUpdate = 0;
        let worstName = '';
        for (const [key, x0] of before) {
          if (key.includes('.running_') || key.startsWith('optimizer.')) continue;
          const x = afterCompiled.get(key)!;
          const y = afterEager.get(key)!;
          let error = 0;
          let reference = 0;
          for (let i = 0; i < x0.length; i++) {
            error += (x[i] - y[i]) ** 2;
            reference += (y[i] - x0[i]) ** 2;
          }
          const relative = Math.sqrt(error / reference);
          if (relative > worstUpdate) [worstUpdate, worstName] = [relative, key];
        }
        expect(worstUpdate, worstName).toBeLessThan(1e-2);
      } finally {
        c.dispose();
      }
    });
  }

  it.skipIf(cpuBfloat16Features().length === 0)('stays within bfloat16 tolerance with precision bfloat16', () => {
    const { before, compiled, afterCompiled, eagerLoss, afterEager } = compare(ctx!, smoothed, 'bfloat16');
    // bfloat16 keeps 8 significant bits: the loss within 2%, the head's update within 10%, the running
    // statistics within 5%, and the whole weight update pointing the way the float32 one does (cosine > 0.9).
    expect(Math.abs(compiled.loss - eagerLoss)).toBeLessThan(0.02 * Math.abs(eagerLoss));
    const head = maxRelativeDifference(new Map([...afterCompiled].filter(([k]) => k.startsWith('head.'))), afterEager);
    expect(head.value, head.worst).toBeLessThan(0.1);
    const stats = maxRelativeDifference(
      new Map([...afterCompiled].filter(([k]) => k.includes('.running_'))),
      afterEager,
    );
    expect(stats.value, stats.worst).toBeLessThan(0.05);
    const weights = (k: string) => !k.includes('.running_') && !k.startsWith('optimizer.');
    expect(updateCosine(before, afterCompiled, afterEager, weights)).toBeGreaterThan(0.9);
  });

  it('keeps the tensor count flat over steps and counts updates as the eager step does', () => {
    const c = ctx!;
    const before = snapshot(c);
    const steps = c.optimizer.hostState().steps;
    const tracked = (c.classifier.backbone as ResNet).numBatchesTracked;
    const step = new CompiledFinetuneStep({
      classifier: c.classifier,
      trained: c.params,
      optimizer: c.optimizer,
      optimizerConfig: sgd,
      gradClipNorm: 0,
      loss: smoothed.loss,
      backboneTraining: true,
      precision: 'float32',
    });
    try {
      step.run(c.images, c.labels, 0.01);
      step.countUpdate();
      const tensors = tf.memory().numTensors;
      for (let i = 0; i < 4; i++) {
        step.run(c.images, c.labels, 0.01);
        step.countUpdate();
        expect(tf.memory().numTensors).toBe(tensors);
      }
      step.pull();
      expect(tf.memory().numTensors).toBe(tensors);
    } finally {
      step.dispose();
    }
    expect(c.optimizer.hostState().steps).toBe(steps + 5);
    expect((c.classifier.backbone as ResNet).numBatchesTracked).toBe(tracked + 5);
    restore(c, before);
  });

  it('names why finetuning cannot be compiled', () => {
    const c = ctx!;
    expect(compiledFinetuneProblem(c.classifier, { ...sgd, name: 'lars' }, smoothed.loss)).toBe(
      'optimizer lars is not compiled yet (sgd, adam, adamw are)',
    );
    expect(compiledFinetuneProblem(c.classifier, sgd, smoothed.loss)).toBeUndefined();
  });
});

/** A small compiled run: probe (eager, on features), a head stage and an all stage (compiled), with checkpoints. */
const adamw: OptimizerConfig = { ...sgd, name: 'adamw', lr: 0.002, weightDecay: 0.01 };

function runOptions(compile: 'on' | 'off', optimizer: OptimizerConfig = { ...sgd, lr: 0.02 }): TrainOptions {
  const defaults = trainOptionsOf(finetuneDefaults(), INPUT);
  return {
    ...defaults,
    stages: [
      { epochs: 1, trainable: ['head'] },
      { epochs: 2, trainable: ['all'] },
    ],
    batchSize: 8,
    optimizer,
    backboneLrMultiplier: 0.5,
    schedule: { ...defaults.schedule, name: 'cosine', warmupEpochs: 0 },
    probe: { epochs: 1, lr: 0.05, batchSize: 16 },
    trainView: weakView(INPUT.size, INPUT.mean, INPUT.std),
    loss: { type: 'cross-entropy', labelSmoothing: 0.1, gamma: 2 },
    checkpoints: { everyEpochs: 1, keep: 2 },
    seed: 5,
    compile,
    precision: 'float32',
  };
}

async function run(
  compile: 'on' | 'off',
  context: Omit<TrainContext, 'labeled'>,
  optimizer: OptimizerConfig = { ...sgd, lr: 0.02 },
) {
  const classifier = createClassifier(12);
  try {
    const result = await trainClassifier(classifier, runOptions(compile, optimizer), {
      labeled: quadrantSet(32, 21),
      ...context,
    });
    const weights = Object.fromEntries(classifier.variables().map((v) => [v.name, Array.from(v.variable.dataSync())]));
    return { result, weights };
  } finally {
    classifier.dispose();
  }
}

describe.skipIf(!status.available)('a compiled finetuning run', () => {
  const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'selfsup-compiled-finetune-'));
  const stepLosses = (log: MetricsLog) => log.stepRows().map((r) => [r.globalStep, r.loss]);

  it('says which step it uses, tracks the eager run, and resumes after a checkpoint like an uninterrupted run', async () => {
    const notes: string[] = [];
    const reference = await run('on', { runDir: tmp(), onNote: (line) => notes.push(line) });
    expect(reference.result.trainingStep).toBe('compiled graph, float32 (recipe.train.precision)');
    expect(notes).toContain('training step: compiled graph, float32 (recipe.train.precision)');
    expect(notes).toContain(
      "forward pass (features, evaluation): compiled graph, float32 (the compiled step's precision)",
    );
    // probe 2 steps, head stage 4, all stage 2 x 4.
    expect(reference.result.metrics.stepRows().length).toBe(14);

    // The eager run from the same start: the same losses within float32 drift over 14 steps.
    const eager = await run('off', {});
    expect(eager.result.trainingStep).toBe('eager step, float32 (recipe.train.compile is off)');
    const eagerLosses = stepLosses(eager.result.metrics);
    stepLosses(reference.result.metrics).forEach(([g, loss], i) => {
      expect(g).toBe(eagerLosses[i][0]);
      expect(Math.abs(loss - eagerLosses[i][1]), `step ${g}`).toBeLessThan(1e-3 * Math.abs(eagerLosses[i][1]) + 1e-5);
    });

    // Crash in the second epoch of the all stage, then resume from the checkpoint after its first epoch.
    const runDir = tmp();
    await expect(
      run('on', {
        runDir,
        onStep: (row) => {
          if (row.globalStep === 12) throw new Error('crash at step 12');
        },
      }),
    ).rejects.toThrow('crash at step 12');
    expect(readFileSync(path.join(runDir, 'checkpoints', 'last'), 'utf8').trim()).toBe('ckpt-000000010');
    const resumed = await run('on', { runDir, resume: true });
    expect(stepLosses(resumed.result.metrics)).toEqual(stepLosses(reference.result.metrics));
    for (const [name, values] of Object.entries(reference.weights)) {
      const got = resumed.weights[name];
      const worst = values.reduce((m, v, i) => Math.max(m, Math.abs(v - got[i])), 0);
      expect(worst, name).toBeLessThan(1e-6);
    }
  });

  it('with AdamW (the head ahead of the backbone after the probe): tracks the eager run and resumes', async () => {
    const reference = await run('on', { runDir: tmp() }, adamw);
    const eager = await run('off', {}, adamw);
    const eagerLosses = stepLosses(eager.result.metrics);
    stepLosses(reference.result.metrics).forEach(([g, loss], i) => {
      expect(g).toBe(eagerLosses[i][0]);
      expect(Math.abs(loss - eagerLosses[i][1]), `step ${g}`).toBeLessThan(1e-3 * Math.abs(eagerLosses[i][1]) + 1e-5);
    });
    const runDir = tmp();
    await expect(
      run(
        'on',
        {
          runDir,
          onStep: (row) => {
            if (row.globalStep === 12) throw new Error('crash at step 12');
          },
        },
        adamw,
      ),
    ).rejects.toThrow('crash at step 12');
    const resumed = await run('on', { runDir, resume: true }, adamw);
    expect(stepLosses(resumed.result.metrics)).toEqual(stepLosses(reference.result.metrics));
    for (const [name, values] of Object.entries(reference.weights)) {
      const got = resumed.weights[name];
      const worst = values.reduce((m, v, i) => Math.max(m, Math.abs(v - got[i])), 0);
      expect(worst, name).toBeLessThan(1e-6);
    }
  });

  it('falls back to the eager step with auto and says why (FixMatch)', async () => {
    const options = { ...runOptions('off'), compile: 'auto' as const };
    options.fixmatch = {
      threshold: 0.9,
      ratio: 1,
      weight: 1,
      warmupEpochs: 0,
      thresholdSchedule: 'fixed',
      distributionAlignment: false,
      emaMomentum: 0.9,
      weakView: options.trainView,
      strongView: options.trainView,
    };
    options.stages = [{ epochs: 1, trainable: ['all'] }];
    options.probe = undefined;
    const classifier = createClassifier(12);
    try {
      const result = await trainClassifier(classifier, options, {
        labeled: quadrantSet(16, 21),
        unlabeled: quadrantSet(8, 22),
      });
      expect(result.trainingStep).toBe(
        'eager step, float32 (FixMatch chooses pseudo-labels on the host between its weak and strong forward passes)',
      );
    } finally {
      classifier.dispose();
    }
  });
});
