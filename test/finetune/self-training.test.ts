/**
 * Self-training rounds: the pseudo-label pick against a plain loop, and real
 * rounds (teacher, pseudo-labels, student) on generated images with a tiny backbone.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initEngine } from '../../src/engine/backend.js';
import { withLabels } from '../../src/finetune/image-set.js';
import { runFinetune, trainingDirOf } from '../../src/finetune/run.js';
import { pickPseudoLabels, repeatLabeled, selfTrainOnData } from '../../src/finetune/self-training.js';
import { resolveFinetuneRecipe } from '../../src/recipes/finetune-recipe.js';
import { createRng } from '../../src/util/rng.js';
import { writeClassFolders, writeTinyBackboneExport } from '../cli/fixtures.js';
import { INPUT, quadrantSet } from '../support/labeled-sets.js';
import { createTinyBackbone } from '../support/tiny-backbone.js';

/** Plain version: every row's argmax and max; keep >= threshold; per class the top `cap` by confidence. */
function referencePick(probs: number[][], threshold: number, cap: number | null) {
  const rows = probs.map((row, i) => ({ i, label: row.indexOf(Math.max(...row)), p: Math.max(...row) }));
  const kept: typeof rows = [];
  for (let c = 0; c < probs[0].length; c++) {
    const members = rows.filter((r) => r.label === c && r.p >= threshold).sort((a, b) => b.p - a.p || a.i - b.i);
    kept.push(...(cap === null ? members : members.slice(0, cap)));
  }
  kept.sort((a, b) => a.i - b.i);
  return { positions: kept.map((r) => r.i), labels: kept.map((r) => r.label) };
}

describe('self-training', () => {
  beforeAll(() => {
    expect(initEngine().backend).toBe('tensorflow');
  });

  it('picks confident predictions, at most maxPerClass per class, as a plain loop does', () => {
    const rng = createRng(3);
    const probs = Array.from({ length: 200 }, () => {
      const e = Array.from({ length: 4 }, () => Math.exp(4 * rng.next()));
      const s = e.reduce((a, b) => a + b, 0);
      return e.map((v) => v / s);
    });
    for (const [threshold, cap] of [
      [0.5, null],
      [0.5, 7],
      [0.3, 20],
      [0.99, null],
    ] as Array<[number, number | null]>) {
      const got = pickPseudoLabels(probs.flat(), 4, { threshold, maxPerClass: cap });
      const want = referencePick(probs, threshold, cap);
      expect(Array.from(got.positions)).toEqual(want.positions);
      expect(Array.from(got.labels)).toEqual(want.labels);
      if (cap !== null)
        for (let c = 0; c < 4; c++) expect(want.labels.filter((l) => l === c).length).toBeLessThanOrEqual(cap);
    }
    expect(pickPseudoLabels(probs.flat(), 4, { threshold: 0.5, maxPerClass: 7 }).positions.length).toBe(28);
    expect(() => pickPseudoLabels([0.5, 0.5, 0.1], 2, { threshold: 0.5, maxPerClass: null })).toThrow(
      'Expected a length that is a multiple of 2 for probs but received 3 (number)',
    );
  });

  it('repeats the labeled images to make up the labeled share', () => {
    const labeled = quadrantSet(10, 1);
    expect(repeatLabeled(labeled, 300, 0.5).count).toBe(300);
    expect(repeatLabeled(labeled, 300, 0.25).count).toBe(100);
    expect(repeatLabeled(labeled, 300, 0)).toBe(labeled);
    expect(repeatLabeled(labeled, 4, 0.5)).toBe(labeled);
    const twice = repeatLabeled(labeled, 20, 0.5);
    expect(Array.from(twice.labels)).toEqual([...labeled.labels, ...labeled.labels]);
    expect(twice.pixels.subarray(10 * 144, 11 * 144)).toEqual(labeled.pixels.subarray(0, 144));
  });

  it('a teacher pseudo-labels the unlabeled images and a student trains on both; tensors are released', async () => {
    const recipe = resolveFinetuneRecipe({
      seed: 4,
      stages: [{ epochs: 4, trainable: ['all'] }],
      train: { batchSize: 8, stepsPerEpoch: 10, optimizer: { name: 'adam', lr: 0.01 } },
      selfTraining: { rounds: 2, threshold: 0.5, maxPerClass: 10 },
      labelProblems: { enabled: false },
    });
    const truth = quadrantSet(64, 6);
    const data = {
      train: quadrantSet(12, 5),
      test: quadrantSet(32, 7),
      testSource: 'test' as const,
      // Hidden labels: never trained on, they only measure the pseudo-labels.
      unlabeled: truth,
      skipped: [],
    };
    const before = tf.memory().numTensors;
    let made = 0;
    const makeBackbone = async () => {
      made++;
      return createTinyBackbone(1, createRng('backbone'));
    };
    const rounds: number[] = [];
    const outcome = await selfTrainOnData(makeBackbone, INPUT, recipe, data, {
      onRound: (r) => rounds.push(r.round),
    });
    expect(made).toBe(3);
    expect(rounds).toEqual([1, 2]);
    for (const r of outcome.rounds) {
      expect(r.pseudoLabeled).toBeGreaterThan(0);
      // maxPerClass 10 over 4 classes.
      expect(r.pseudoLabeled).toBeLessThanOrEqual(40);
      expect(r.coverage).toBeCloseTo(r.pseudoLabeled / 64, 12);
      expect(r.pseudoLabelAccuracy).toBeGreaterThanOrEqual(0);
      expect(r.pseudoLabelAccuracy).toBeLessThanOrEqual(1);
      expect(r.teacherUnlabeledAccuracy).toBeGreaterThan(0.25);
    }
    expect(outcome.rounds[0].teacherAccuracy).toBe(outcome.firstAccuracy);
    expect(outcome.rounds[1].teacherAccuracy).toBe(outcome.rounds[0].accuracy);
    // The last student trained on the 12 labeled images plus its round's pseudo-labels.
    const last = outcome.rounds[1];
    // labeledShare 0.5 (the default): the 12 labeled images repeated to about as many as the pseudo-labels.
    expect(outcome.imbalance.total).toBe(12 * Math.max(1, Math.round(last.pseudoLabeled / 12)) + last.pseudoLabeled);
    expect(outcome.evaluation.metrics.accuracy).toBe(last.accuracy);
    outcome.classifier.dispose();
    expect(tf.memory().numTensors).toBe(before);

    // Without hidden labels the pick still happens; its accuracy is unknown.
    const hidden = await selfTrainOnData(
      makeBackbone,
      INPUT,
      { ...recipe, selfTraining: { ...recipe.selfTraining, rounds: 1 } },
      {
        ...data,
        unlabeled: withLabels(truth, new Int32Array(64).fill(-1)),
      },
    );
    expect(hidden.rounds[0].pseudoLabelAccuracy).toBeUndefined();
    expect(hidden.rounds[0].pseudoLabeled).toBeGreaterThan(0);
    hidden.classifier.dispose();
    await expect(selfTrainOnData(makeBackbone, INPUT, recipe, { ...data, unlabeled: undefined })).rejects.toThrow(
      'self-training needs an unlabeled set (--unlabeled) with at least one image',
    );
  }, 120_000);
});

describe('self-training after FixMatch', () => {
  beforeAll(() => {
    expect(initEngine().backend).toBe('tensorflow');
  });

  it('with studentFixmatch false the teacher runs FixMatch and the student does not; the teacher is judged on a validation set', async () => {
    const base = {
      seed: 2,
      stages: [{ epochs: 2, trainable: ['all'] }],
      train: { batchSize: 8, stepsPerEpoch: 4, optimizer: { name: 'adam', lr: 0.01 } },
      fixmatch: { enabled: true, ratio: 1, threshold: 0.3, warmupEpochs: 0 },
      labelProblems: { enabled: false },
    };
    const data = {
      train: quadrantSet(12, 5),
      test: quadrantSet(32, 7),
      testSource: 'test' as const,
      unlabeled: quadrantSet(48, 6),
      skipped: [],
    };
    const validation = quadrantSet(20, 8);
    const makeBackbone = async () => createTinyBackbone(1, createRng('backbone'));
    const before = tf.memory().numTensors;
    const rates: Record<string, number[]> = {};
    for (const studentFixmatch of [false, true]) {
      const recipe = resolveFinetuneRecipe({
        ...base,
        selfTraining: { rounds: 1, threshold: 0, maxPerClass: 8, studentFixmatch },
      });
      const seen: number[] = [];
      // Validation = the test set in the first run: the teacher's two figures must then agree.
      const outcome = await selfTrainOnData(makeBackbone, INPUT, recipe, data, {
        validation: studentFixmatch ? validation : data.test,
        onEpoch: (m) => seen.push(m.maskRate ?? Number.NaN),
      });
      rates[String(studentFixmatch)] = seen;
      const round = outcome.rounds[0];
      if (!studentFixmatch) expect(round.teacherValAccuracy).toBe(round.teacherAccuracy);
      expect(round.teacherValAccuracy! * validation.count).toBeCloseTo(Math.round(round.teacherValAccuracy! * 20), 9);
      expect(round.pseudoLabeled).toBeGreaterThan(0);
      expect(round.pseudoLabeled).toBeLessThanOrEqual(32);
      outcome.classifier.dispose();
    }
    // Two epochs per round: the FixMatch teacher reports a mask rate in both runs; the student only when it runs FixMatch too.
    expect(rates.false).toHaveLength(4);
    expect(rates.false.slice(0, 2).every((r) => r >= 0 && r <= 1)).toBe(true);
    expect(rates.false.slice(2).every((r) => Number.isNaN(r))).toBe(true);
    expect(rates.true.every((r) => r >= 0 && r <= 1)).toBe(true);
    // The same teacher in both runs.
    expect(rates.true.slice(0, 2)).toEqual(rates.false.slice(0, 2));
    expect(tf.memory().numTensors).toBe(before);
  }, 120_000);
});

describe('self-training in selfsup finetune', () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'selfsup-self-training-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it('a crash in round 1, then --resume: the finished round is restored and the result is the uninterrupted one', async () => {
    const labeled = path.join(tmp, 'labeled');
    const dump = path.join(tmp, 'dump');
    const backbone = path.join(tmp, 'backbone');
    await writeClassFolders(labeled, 6, 1);
    await writeClassFolders(dump, 8, 2);
    await writeTinyBackboneExport(backbone, 16);
    // 2 epochs of 3 steps per round; a checkpoint after every epoch.
    const recipe = resolveFinetuneRecipe({
      stages: [{ epochs: 2, trainable: ['all'] }],
      train: { batchSize: 4, stepsPerEpoch: 3, optimizer: { name: 'adam', lr: 0.01 } },
      augment: { train: 'weak' },
      selfTraining: { rounds: 1, threshold: 0, maxPerClass: 4 },
      eval: { holdout: 0.25 },
      labelProblems: { enabled: false },
    });
    const job = { recipe, backbone, labels: labeled, unlabeled: dump };
    const reference = await runFinetune({ ...job, out: path.join(tmp, 'reference') });
    expect(reference.selfTraining?.rounds).toHaveLength(1);

    const out = path.join(tmp, 'resumed');
    let steps = 0;
    await expect(
      runFinetune({
        ...job,
        out,
        onStep: () => {
          // Round 0: steps 1-6; round 1 crashes in its second epoch (after its first checkpoint).
          if (++steps === 11) throw new Error('crash in round 1');
        },
      }),
    ).rejects.toThrow('crash in round 1');
    const training = trainingDirOf(out);
    expect(existsSync(path.join(training, 'round-0', 'checkpoints', 'last'))).toBe(true);
    expect(existsSync(path.join(training, 'round-1', 'checkpoints', 'last'))).toBe(true);
    let resumedSteps = 0;
    const resumed = await runFinetune({ ...job, out, resume: true, onStep: () => resumedSteps++ });
    // Round 0 restored from its last checkpoint (no steps), round 1 continued at its second epoch.
    expect(resumedSteps).toBe(3);
    const withoutTime = (s: typeof reference) => ({
      accuracy: s.accuracy,
      finalLoss: s.finalLoss,
      rounds: s.selfTraining?.rounds.map(({ seconds, ...rest }) => rest),
      first: s.selfTraining?.firstAccuracy,
    });
    expect(withoutTime(resumed)).toEqual(withoutTime(reference));
    expect(existsSync(training)).toBe(false);
  }, 180_000);
});
