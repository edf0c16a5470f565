import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { strongView, weakView } from '../../src/data/augment/presets.js';
import { initEngine } from '../../src/engine/backend.js';
import { Classifier } from '../../src/finetune/classifier.js';
import { withLabels } from '../../src/finetune/image-set.js';
import { argmaxRows } from '../../src/finetune/metrics.js';
import { trainOptionsOf } from '../../src/finetune/recipe.js';
import { type TrainOptions, trainClassifier } from '../../src/finetune/train.js';
import { finetuneDefaults } from '../../src/recipes/finetune-recipe.js';
import type { OptimizerConfig } from '../../src/recipes/optimizer-schema.js';
import { createRng } from '../../src/util/rng.js';
import { CLASSES, INPUT, quadrantSet } from '../support/labeled-sets.js';
import { createTinyBackbone } from '../support/tiny-backbone.js';

function makeClassifier(seed = 1): Classifier {
  const rng = createRng(seed);
  return new Classifier(
    createTinyBackbone(1, rng.derive('backbone')),
    { input: INPUT, classNames: CLASSES, hidden: [] },
    rng.derive('head'),
  );
}

function accuracy(c: Classifier, set = quadrantSet(80, 99)): number {
  const probs = c.predictProbabilities(set);
  const { predicted } = argmaxRows(probs, 4);
  return predicted.filter((p, i) => p === set.labels[i]).length / set.count;
}

/** The recipe defaults as training options, with the head's rate 0.05 unless `optimizer` says otherwise. */
const DEFAULTS = trainOptionsOf(finetuneDefaults(), INPUT);
const base = (
  over: Omit<Partial<TrainOptions>, 'optimizer'> & { optimizer?: Partial<OptimizerConfig> },
): TrainOptions => ({
  ...DEFAULTS,
  trainView: [],
  seed: 3,
  ...over,
  optimizer: { ...DEFAULTS.optimizer, lr: 0.05, ...over.optimizer },
});

function snapshot(c: Classifier): Map<string, Float32Array> {
  return new Map(c.variables().map((v) => [v.name, v.variable.dataSync().slice() as Float32Array]));
}
function changed(a: Map<string, Float32Array>, b: Map<string, Float32Array>, name: string): boolean {
  const x = a.get(name)!;
  const y = b.get(name)!;
  return x.some((v, i) => v !== y[i]);
}

describe('finetuning loop', () => {
  beforeAll(() => {
    expect(initEngine().backend).toBe('tensorflow');
  });

  it('linear probe on precomputed features learns, loss goes down, same seed same result', async () => {
    const train = quadrantSet(64, 1);
    const runs: number[][] = [];
    for (let r = 0; r < 2; r++) {
      const c = makeClassifier();
      const before = snapshot(c);
      const result = await trainClassifier(c, base({ stages: [{ epochs: 15, trainable: ['head'] }], batchSize: 16 }), {
        labeled: train,
      });
      expect(result.precomputedFeatures).toBe(true);
      const h = result.history;
      expect(h[h.length - 1].loss).toBeLessThan(h[0].loss);
      expect(accuracy(c)).toBeGreaterThan(0.8);
      // The backbone did not move.
      expect(changed(before, snapshot(c), 'conv1.weight')).toBe(false);
      runs.push(h.map((m) => m.loss));
      c.dispose();
    }
    expect(runs[0]).toEqual(runs[1]);
  });

  it('staged unfreezing trains only the selected parts; head-only stages leave BN statistics; tensor count flat', async () => {
    const train = quadrantSet(48, 2);
    const c = makeClassifier(2);
    const counts: number[] = [];
    const s0 = snapshot(c);
    await trainClassifier(
      c,
      base({ stages: [{ epochs: 2, trainable: ['head'] }], batchSize: 16, trainView: weakView(12, [0.3], [0.3]) }),
      { labeled: train },
    );
    const s1 = snapshot(c);
    expect(changed(s0, s1, 'head.classifier.0.weight')).toBe(true);
    expect(changed(s0, s1, 'layer4.0.conv1.weight')).toBe(false);
    expect(changed(s0, s1, 'bn1.running_mean')).toBe(false);
    await trainClassifier(
      c,
      base({ stages: [{ epochs: 2, trainable: ['layer4', 'head'] }], batchSize: 16, backboneLrMultiplier: 0.5 }),
      { labeled: train },
    );
    const s2 = snapshot(c);
    expect(changed(s1, s2, 'layer4.0.conv1.weight')).toBe(true);
    expect(changed(s1, s2, 'conv1.weight')).toBe(false);
    // One training flag for the whole backbone: BatchNorm statistics follow the data even in frozen layers.
    expect(changed(s1, s2, 'bn1.running_mean')).toBe(true);
    const result = await trainClassifier(
      c,
      base({
        stages: [
          { epochs: 1, trainable: ['head'] },
          { epochs: 1, trainable: ['layer4', 'head'] },
          { epochs: 4, trainable: ['all'] },
        ],
        batchSize: 16,
        optimizer: { name: 'sgd', momentum: 0.9, nesterov: true, weightDecay: 1e-4 },
      }),
      { labeled: train, onEpoch: () => counts.push(tf.memory().numTensors) },
    );
    const s3 = snapshot(c);
    expect(changed(s2, s3, 'conv1.weight')).toBe(true);
    expect(changed(s2, s3, 'bn1.running_mean')).toBe(true);
    expect(result.history.map((m) => m.stage)).toEqual([0, 1, 2, 2, 2, 2]);
    // Flat across every epoch: one optimizer for all stages, its slots made up front.
    expect(new Set(counts).size).toBe(1);
    expect(accuracy(c)).toBeGreaterThan(0.7);
    c.dispose();
  });

  it('a linear probe before the stages (LP-FT) hands its trained head to the stages; epochs numbered through', async () => {
    const train = quadrantSet(64, 5);
    const stages = [{ epochs: 2, trainable: ['all'] }];
    // A learning rate so small that the stages barely move anything: what the model knows comes from the probe.
    const options = base({ stages, batchSize: 16, optimizer: { lr: 1e-6 } });
    const tensorsBefore = tf.memory().numTensors;
    const c = makeClassifier(5);
    const s0 = snapshot(c);
    const result = await trainClassifier(
      c,
      { ...options, probe: { epochs: 15, lr: 0.05, batchSize: 16 } },
      { labeled: train },
    );
    expect(result.history.map((m) => m.stage)).toEqual([...Array(15).fill(-1), 0, 0]);
    expect(result.history.map((m) => m.epoch)).toEqual(Array.from({ length: 17 }, (_, i) => i));
    expect(result.precomputedFeatures).toBe(false); // the stages trained the backbone
    expect(changed(s0, snapshot(c), 'conv1.weight')).toBe(true);
    const probeLosses = result.history.filter((m) => m.stage < 0).map((m) => m.loss);
    expect(probeLosses[probeLosses.length - 1]).toBeLessThan(probeLosses[0]);
    const withProbe = accuracy(c);
    expect(withProbe).toBeGreaterThan(0.8);
    c.dispose();
    // The same stages without the probe start from a random head.
    const d = makeClassifier(5);
    const plain = await trainClassifier(d, options, { labeled: train });
    expect(plain.history.map((m) => m.stage)).toEqual([0, 0]);
    expect(withProbe).toBeGreaterThan(accuracy(d) + 0.3);
    d.dispose();
    expect(tf.memory().numTensors).toBe(tensorsBefore);
  });

  it('backbone learning rate multiplier 0 keeps the backbone fixed while the head trains', async () => {
    const c = makeClassifier(4);
    const s0 = snapshot(c);
    await trainClassifier(
      c,
      base({
        stages: [{ epochs: 1, trainable: ['all'] }],
        batchSize: 16,
        optimizer: { name: 'sgd', momentum: 0 },
        backboneLrMultiplier: 0,
      }),
      {
        labeled: quadrantSet(32, 4),
      },
    );
    const s1 = snapshot(c);
    expect(changed(s0, s1, 'conv1.weight')).toBe(false);
    expect(changed(s0, s1, 'head.classifier.0.weight')).toBe(true);
    c.dispose();
  });

  it('FixMatch runs on an unlabeled set and reports mask rate and pseudo-label accuracy', async () => {
    const labeled = quadrantSet(16, 5);
    const unlabeledTruth = quadrantSet(64, 6);
    const c = makeClassifier(5);
    const counts: number[] = [];
    const result = await trainClassifier(
      c,
      base({
        stages: [{ epochs: 6, trainable: ['all'] }],
        batchSize: 8,
        fixmatch: {
          threshold: 0.6,
          ratio: 2,
          weight: 1,
          warmupEpochs: 2,
          weakView: weakView(12, [0.3], [0.3]),
          strongView: strongView(12, [0.3], [0.3]),
        },
        trainView: weakView(12, [0.3], [0.3]),
      }),
      { labeled, unlabeled: unlabeledTruth, onEpoch: () => counts.push(tf.memory().numTensors) },
    );
    // Each epoch sees ratio x batch x steps = 2 x 8 x 2 unlabeled images: the mask rate counts
    // them; no unlabeled loss without a confident one; the confident pseudo-labels of the easy
    // quadrant task are right (chance is 1/4).
    const seenPerEpoch = 2 * 8 * 2;
    for (const h of result.history) {
      expect(h.maskRate * seenPerEpoch).toBeCloseTo(Math.round(h.maskRate * seenPerEpoch), 6);
      if (h.maskRate === 0) expect(h.unlabeledLoss).toBe(0);
      else expect(h.unlabeledLoss).toBeGreaterThan(0);
      if (h.pseudoLabelAccuracy !== undefined) expect(h.pseudoLabelAccuracy).toBeGreaterThanOrEqual(0.75);
    }
    expect(Math.max(...result.history.map((h) => h.maskRate))).toBeGreaterThan(0.1);
    expect(new Set(counts).size).toBe(1);
    // Hidden labels are optional: with all -1 the accuracy is undefined but the mask rate is still reported.
    const hidden = withLabels(unlabeledTruth, new Int32Array(64).fill(-1));
    const again = await trainClassifier(
      c,
      base({
        stages: [{ epochs: 1, trainable: ['head'] }],
        batchSize: 8,
        fixmatch: {
          threshold: 0.5,
          ratio: 1,
          weight: 1,
          warmupEpochs: 0,
          weakView: weakView(12, [0.3], [0.3]),
          strongView: strongView(12, [0.3], [0.3]),
        },
      }),
      { labeled, unlabeled: hidden },
    );
    expect(again.history[0].pseudoLabelAccuracy).toBeUndefined();
    // 1 x 8 x 2 unlabeled images this time.
    expect(again.history[0].maskRate * 16).toBeCloseTo(Math.round(again.history[0].maskRate * 16), 6);
    expect(again.history[0].maskRate).toBeLessThanOrEqual(1);
    c.dispose();
  });

  it('an auxiliary pretext loss trains with the stages that train the backbone; tensors flat; errors name the key', async () => {
    const recipe = finetuneDefaults();
    recipe.auxiliary = { task: 'rotation', options: { mode: 'random-one' }, weight: 0.5, images: 8 };
    const auxiliary = trainOptionsOf(recipe, INPUT).auxiliary;
    expect(auxiliary?.task.id).toBe('rotation');
    const labeled = quadrantSet(16, 8);
    const options = (aux: TrainOptions['auxiliary']) =>
      base({
        stages: [
          { epochs: 1, trainable: ['head'] },
          { epochs: 4, trainable: ['all'] },
        ],
        batchSize: 8,
        trainView: weakView(12, [0.3], [0.3]),
        auxiliary: aux,
      });
    // Without FixMatch the task sees the labeled batch.
    const withAux = makeClassifier(8);
    const counts: number[] = [];
    const result = await trainClassifier(withAux, options(auxiliary), {
      labeled,
      onEpoch: () => counts.push(tf.memory().numTensors),
    });
    const aux = result.history.map((h) => h.auxiliaryLoss);
    expect(aux[0]).toBeUndefined(); // the head-only stage
    for (const v of aux.slice(1)) {
      expect(Number.isFinite(v)).toBe(true);
      expect(v).toBeGreaterThan(0);
    }
    // A 4-way loss from a fresh head starts near ln 4 = 1.39 (the quadrant images' rotations are
    // not learnable in 8 steps: one quadrant turned is another's).
    expect(aux[1]).toBeGreaterThan(0.9);
    expect(aux[1]).toBeLessThan(2.5);
    expect(new Set(counts.slice(1)).size).toBe(1);
    // Seeded: the same run again gives the same auxiliary losses.
    const again = makeClassifier(8);
    expect((await trainClassifier(again, options(auxiliary), { labeled })).history.map((h) => h.auxiliaryLoss)).toEqual(
      aux,
    );
    again.dispose();
    // The same run without it: the same head-only epoch, then a different backbone.
    const plain = makeClassifier(8);
    const plainResult = await trainClassifier(plain, options(undefined), { labeled });
    expect(plainResult.history[0].loss).toBe(result.history[0].loss);
    expect(changed(snapshot(withAux), snapshot(plain), 'conv1.weight')).toBe(true);
    // Head-only stages: nothing for the task to regularise.
    await expect(
      trainClassifier(plain, base({ stages: [{ epochs: 1, trainable: ['head'] }], auxiliary }), { labeled }),
    ).rejects.toThrow(/recipe.auxiliary needs a stage that trains the backbone/);
    withAux.dispose();
    plain.dispose();
    // Recipe errors name the key; weight 0 turns it off.
    const resolve = (a: object) =>
      trainOptionsOf({ ...finetuneDefaults(), auxiliary: { ...recipe.auxiliary, ...a } }, INPUT);
    expect(resolve({ weight: 0 }).auxiliary).toBeUndefined();
    expect(() => resolve({ task: 'no-such-task' })).toThrow(/recipe.auxiliary.task/);
    expect(() => resolve({ task: 'byol', options: {} })).toThrow(/recipe.auxiliary.task.*momentum target or buffers/);
    expect(() => resolve({ task: 'jigsaw', options: {} })).toThrow(
      /recipe.auxiliary.task.*tiles made by the data loader/,
    );
    expect(() => resolve({ options: { mode: 'sideways' } })).toThrow(/recipe.auxiliary.options/);
  });

  it('errors: FixMatch without unlabeled data, stages selecting nothing', async () => {
    const c = makeClassifier(6);
    const labeled = quadrantSet(8, 7);
    await expect(
      trainClassifier(
        c,
        base({ fixmatch: { threshold: 0.9, ratio: 1, weight: 1, warmupEpochs: 0, weakView: [], strongView: [] } }),
        { labeled },
      ),
    ).rejects.toThrow('FixMatch needs an unlabeled set');
    await expect(
      trainClassifier(c, base({ stages: [{ epochs: 1, trainable: ['layer9'] }] }), { labeled }),
    ).rejects.toThrow(
      /Expected name prefixes that select some variables \(head, layer4, backbone, all\) for recipe.stages\[0\].trainable/,
    );
    c.dispose();
  });
});
