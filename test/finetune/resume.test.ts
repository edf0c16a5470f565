/**
 * Finetuning resumes like pretraining does: a crash or a SIGKILL mid-epoch
 * leaves complete checkpoints only, and the resumed run ends with the weights,
 * losses and history of an uninterrupted one. A diverged loss stops the run
 * before the update and keeps the last good checkpoint.
 */
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { initEngine } from '../../src/engine/index.js';
import type { Classifier } from '../../src/finetune/classifier.js';
import type { EpochMetrics, TrainResult } from '../../src/finetune/train.js';
import { trainClassifier } from '../../src/finetune/train.js';
import { MetricsLog } from '../../src/train/metrics.js';
import { DivergenceError } from '../../src/train/step.js';
import { quadrantSet } from '../support/labeled-sets.js';
import { expectCompleteCheckpoints, lastCheckpoint, runAndKill, stepLosses } from '../support/sigkill-resume.js';
import { resumeClassifier, resumeOptions, runResumeFixture } from './fixtures/finetune-child.js';

const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'selfsup-finetune-resume-'));

function weights(c: Classifier): Record<string, number[]> {
  return Object.fromEntries(c.variables().map((v) => [v.name, Array.from(v.variable.dataSync())]));
}
const withoutTime = (history: EpochMetrics[]) => history.map(({ seconds, ...rest }) => rest);
const status = (runDir: string) => JSON.parse(readFileSync(path.join(runDir, 'status.json'), 'utf8'));

let reference: {
  weights: Record<string, number[]>;
  steps: Array<[number, number]>;
  history: EpochMetrics[];
  pseudoLabels: TrainResult['pseudoLabelState'];
};

beforeAll(async () => {
  expect(initEngine({ quiet: true }).backend).toBe('tensorflow');
  const runDir = tmp();
  const { classifier, result } = await runResumeFixture({ runDir });
  reference = {
    weights: weights(classifier),
    steps: stepLosses(result.metrics),
    history: result.history,
    pseudoLabels: result.pseudoLabelState,
  };
  classifier.dispose();
  // FixMatch's running statistics moved once per stage step (1 + 3 epochs x 4 steps).
  expect(reference.pseudoLabels?.updates).toBe(16);
  expect(reference.pseudoLabels?.globalConfidence).toBeGreaterThan(0.25);
  // probe 2 epochs x 2 steps, head stage 1 x 4, all 3 x 4; checkpoints after the probe and each stage epoch.
  expect(reference.steps.map(([g]) => g)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
  expect(reference.history.map((m) => m.stage)).toEqual([-1, -1, 0, 1, 1, 1]);
  // The auxiliary rotation loss runs in the stage that trains the backbone only.
  expect(reference.history.map((m) => m.auxiliaryLoss !== undefined)).toEqual([false, false, false, true, true, true]);
  expect(lastCheckpoint(runDir)).toBe('ckpt-000000020');
  expect(status(runDir).status).toBe('finished');
  expect(MetricsLog.read(path.join(runDir, 'metrics.arrow')).epochRows().length).toBe(6);
}, 120_000);

describe('finetuning checkpoints and resume', () => {
  it('a crash mid-epoch, then resume: the weights, losses and history of the uninterrupted run', async () => {
    const runDir = tmp();
    await expect(
      runResumeFixture({
        runDir,
        onStep: (row) => {
          if (row.globalStep === 14) throw new Error('crash at step 14');
        },
      }),
    ).rejects.toThrow('crash at step 14');
    expect(status(runDir).status).toBe('failed');
    // Epoch boundaries at global steps 4 (probe), 8, 12, 16, 20: the last complete one before step 14.
    expect(lastCheckpoint(runDir)).toBe('ckpt-000000012');
    const { classifier, result } = await runResumeFixture({ runDir, resume: true });
    expect(weights(classifier)).toEqual(reference.weights);
    expect(withoutTime(result.history)).toEqual(withoutTime(reference.history));
    expect(stepLosses(result.metrics)).toEqual(reference.steps);
    expect(result.pseudoLabelState).toEqual(reference.pseudoLabels);
    expect(status(runDir).status).toBe('finished');
    classifier.dispose();
  }, 120_000);

  it('SIGKILL mid-epoch, then resume: only complete checkpoints, and the uninterrupted run at the end', async () => {
    const runDir = tmp();
    const { exit, stderr, printed } = await runAndKill('test/finetune/fixtures/finetune-child.ts', [runDir, '14'], 14);
    expect(exit, stderr).toBe('SIGKILL');
    expect(printed).toEqual(reference.steps.slice(0, 14));
    const checkpoints = path.join(runDir, 'checkpoints');
    expectCompleteCheckpoints(checkpoints);
    expect(lastCheckpoint(runDir)).toBe('ckpt-000000012');
    expect(status(runDir).status).toBe('running');
    // The checkpoint the run resumes from holds FixMatch's running statistics after its 8 stage steps.
    const saved = JSON.parse(readFileSync(path.join(checkpoints, 'ckpt-000000012', 'state.json'), 'utf8'));
    expect(saved.pseudoLabels.updates).toBe(8);
    // And the weights' moving average (train.emaDecay) after the same 8 stage steps.
    expect(saved.emaUpdates).toBe(8);

    const { classifier, result } = await runResumeFixture({ runDir, resume: true });
    expect(weights(classifier)).toEqual(reference.weights);
    expect(stepLosses(result.metrics)).toEqual(reference.steps);
    expect(result.pseudoLabelState).toEqual(reference.pseudoLabels);
    expect(stepLosses(MetricsLog.read(path.join(runDir, 'metrics.arrow')))).toEqual(reference.steps);
    expect(readdirSync(checkpoints).filter((n) => n.endsWith('.tmp'))).toEqual([]);
    classifier.dispose();
  }, 180_000);

  it('a diverging loss stops the run before the update; the last good checkpoint is kept', async () => {
    const runDir = tmp();
    const options = resumeOptions();
    // The probe (its own rate) checkpoints at global step 4; the stages then run at an absurd rate.
    options.optimizer = { ...options.optimizer, name: 'sgd', lr: 10, momentum: 0.9, weightDecay: 0 };
    options.schedule = { ...options.schedule, warmupEpochs: 0 };
    options.divergence = { maxLoss: 1e4, explodeFactor: 5 };
    const classifier = resumeClassifier();
    const error = await trainClassifier(classifier, options, {
      labeled: quadrantSet(32, 21),
      unlabeled: quadrantSet(24, 22),
      runDir,
    }).catch((e) => e);
    classifier.dispose();
    expect(error).toBeInstanceOf(DivergenceError);
    const kept = path.join(runDir, 'checkpoints', 'ckpt-000000004');
    expect(error.lastGoodCheckpoint).toBe(kept);
    expect(error.message).toMatch(/^finetuning stopped at epoch \d, step \d \(global step \d+\): /);
    expect(error.message).toContain(
      `the last good checkpoint is ${kept}. Lower the learning rate (recipe.train.optimizer.lr)`,
    );
    expect(status(runDir).status).toBe('diverged');
    expect(lastCheckpoint(runDir)).toBe('ckpt-000000004');
  }, 60_000);
});
