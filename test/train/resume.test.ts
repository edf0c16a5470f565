import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { initEngine } from '../../src/engine/index.js';
import { pretrain } from '../../src/train/loop.js';
import { MetricsLog } from '../../src/train/metrics.js';
import { readArrowTable } from '../../src/util/arrow.js';
import { tinyComponents, tinyRecipe } from '../support/pretraining.js';
import { expectCompleteCheckpoints, lastCheckpoint, runAndKill, stepLosses } from '../support/sigkill-resume.js';

const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'selfsup-resume-'));
// 48 images / batch 8 = 6 steps per epoch; checkpoints every 2 steps and every epoch.
const RECIPE_OVERRIDES = { train: { epochs: 3, checkpointEverySteps: 2, keepCheckpoints: 2 } };
const base = () => tinyRecipe(RECIPE_OVERRIDES);
const run = (options: Parameters<typeof pretrain>[1], recipe = base()) =>
  pretrain(recipe, { components: tinyComponents(), dataPath: 'generated', progress: false, ...options });

/** Backbone, heads and optimizer state of the run's last checkpoint. */
function weights(runDir: string): Buffer {
  return readFileSync(path.join(runDir, 'checkpoints', lastCheckpoint(runDir), 'tensors.bin'));
}

let reference: { runDir: string; steps: Array<[number, number]> };

beforeAll(async () => {
  expect(initEngine({ quiet: true }).backend).toBe('tensorflow');
  const result = await run({ outDir: tmp(), runId: 'reference' });
  reference = { runDir: result.runDir, steps: stepLosses(result.metrics) };
  expect(reference.steps.map(([g]) => g)).toEqual(Array.from({ length: 18 }, (_, i) => i + 1));
});

describe('resume', () => {
  it('stopping mid-epoch and resuming gives the uninterrupted run', async () => {
    const outDir = tmp();
    const first = await run({ outDir, runId: 'r', maxSteps: 9 });
    expect(first.status).toBe('stopped');
    // maxSteps writes a checkpoint where it stops: global step 9 (epoch 1, step 3).
    expect(lastCheckpoint(first.runDir)).toBe('ckpt-000000009');
    const events: string[] = [];
    const second = await run({
      resume: first.runDir,
      onEvent: (e) => {
        if (e.type === 'start') events.push(`start ${e.resumedFrom}`);
      },
    });
    expect(second.status).toBe('finished');
    expect(events).toEqual([`start ${path.join(first.runDir, 'checkpoints', 'ckpt-000000009')}`]);
    expect(second.losses.length).toBe(9);
    const resumed = MetricsLog.read(path.join(first.runDir, 'metrics.arrow'));
    expect(stepLosses(resumed)).toEqual(reference.steps);
    expect(resumed.epochRows().map((r) => r.epoch)).toEqual([0, 1, 2]);
    expect(weights(first.runDir).equals(weights(reference.runDir))).toBe(true);
  });

  it('an abort (Ctrl-C) finishes the step, writes a checkpoint, and the resume completes the run', async () => {
    const outDir = tmp();
    const controller = new AbortController();
    const first = await run({
      outDir,
      runId: 'abort',
      signal: controller.signal,
      onEvent: (e) => {
        if (e.type === 'step' && e.row.globalStep === 3) controller.abort();
      },
    });
    expect(first.status).toBe('stopped');
    expect(first.losses.length).toBe(3);
    expect(lastCheckpoint(first.runDir)).toBe('ckpt-000000003');
    expect(JSON.parse(readFileSync(path.join(first.runDir, 'status.json'), 'utf8')).message).toBe('interrupted');
    await run({ resume: first.runDir });
    expect(stepLosses(MetricsLog.read(path.join(first.runDir, 'metrics.arrow')))).toEqual(reference.steps);
  });

  it('a resume may change epochs and lr overrides, nothing else', async () => {
    const outDir = tmp();
    const first = await run({ outDir, runId: 'o', maxSteps: 6 });
    const changed = base();
    changed.train.epochs = 4;
    changed.train.lrOverrides = { 2: 0.001 };
    const second = await run({ resume: first.runDir }, changed);
    const rows = second.metrics.stepRows();
    expect(rows.length).toBe(24);
    expect(rows.filter((r) => r.epoch === 2).every((r) => r.lr === 0.001)).toBe(true);
    expect(rows.filter((r) => r.epoch === 3).every((r) => r.lr === 0.05)).toBe(true);
    const saved = readFileSync(path.join(first.runDir, 'recipe.resolved.yaml'), 'utf8');
    expect(saved).toMatch(/epochs: 4/);

    const other = base();
    other.data.batchSize = 4;
    other.train.optimizer.lr = 0.2;
    await expect(run({ resume: first.runDir }, other)).rejects.toThrow(
      `cannot resume ${first.runDir} with a different recipe: recipe.data.batchSize, recipe.train.optimizer.lr changed (only train.epochs and train.lrOverrides may change on resume)`,
    );
  });

  it('SIGKILL mid-epoch, then resume: a finished run whose metrics continue the interrupted ones', async () => {
    const outDir = tmp();
    // Kill in the middle of epoch 1 (steps 7-12), after step 9.
    const { exit, stderr, printed } = await runAndKill(
      'test/train/fixtures/pretrain-child.ts',
      [outDir, 'killed', '20', '9'],
      9,
      { TINY_RECIPE: JSON.stringify(RECIPE_OVERRIDES) },
    );
    expect(exit, stderr).toBe('SIGKILL');
    expect(printed.length).toBe(9);

    const runDir = path.join(outDir, 'killed');
    const checkpoints = path.join(runDir, 'checkpoints');
    // Never a half-written checkpoint: every ckpt-* is complete and `last` names one of them.
    expectCompleteCheckpoints(checkpoints);
    const last = lastCheckpoint(runDir);
    expect(last).toBe('ckpt-000000008');
    expect(JSON.parse(readFileSync(path.join(runDir, 'status.json'), 'utf8')).status).toBe('running');

    const resumed = await run({ resume: runDir });
    expect(resumed.status).toBe('finished');
    const log = MetricsLog.read(path.join(runDir, 'metrics.arrow'));
    // The interrupted steps (as printed by the killed process) are the start of the finished run's metrics ...
    const finished = stepLosses(log);
    expect(finished.slice(0, printed.length)).toEqual(printed);
    // ... and the finished run is the uninterrupted one: steps 1..18 once each, same losses.
    expect(finished).toEqual(reference.steps);
    expect(readArrowTable(path.join(runDir, 'metrics.arrow')).numRows).toBe(18 + 3);
    expect(weights(runDir).equals(weights(reference.runDir))).toBe(true);
    expect(readdirSync(checkpoints).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });
});
