/**
 * Resume after SIGKILL is bit-identical for a method with a momentum target and
 * a queue (MoCo v2): the key encoder, the queue and its pointer are checkpointed
 * with the weights, so the resumed run's losses and final tensors equal the
 * uninterrupted run's.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { initEngine } from '../../src/engine/index.js';
import { pretrain } from '../../src/train/loop.js';
import { MetricsLog } from '../../src/train/metrics.js';
import { lastCheckpoint, runAndKill, stepLosses } from '../support/sigkill-resume.js';
import { methodComponents, mocoRecipe } from './method-helpers.js';

const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'selfsup-resume-moco-'));
// 48 images / batch 8 = 6 steps per epoch, 3 epochs; checkpoints every 2 steps.
const OVERRIDES = {
  train: {
    epochs: 3,
    checkpointEverySteps: 2,
    keepCheckpoints: 2,
    optimizer: { name: 'sgd', lr: 0.05, momentum: 0.9 },
    schedule: { name: 'cosine' },
  },
};

function lastCheckpointFiles(runDir: string): { bin: Buffer; names: string[] } {
  const dir = path.join(runDir, 'checkpoints', lastCheckpoint(runDir));
  const index = JSON.parse(readFileSync(path.join(dir, 'tensors.json'), 'utf8')) as {
    tensors: Array<{ name: string }>;
  };
  return { bin: readFileSync(path.join(dir, 'tensors.bin')), names: index.tensors.map((t) => t.name) };
}

let reference: { runDir: string; steps: Array<[number, number]> };

beforeAll(async () => {
  expect(initEngine({ quiet: true }).backend).toBe('tensorflow');
  const result = await pretrain(mocoRecipe(OVERRIDES), {
    components: methodComponents(),
    dataPath: 'generated',
    outDir: tmp(),
    runId: 'reference',
    progress: false,
  });
  reference = { runDir: result.runDir, steps: stepLosses(result.metrics) };
  expect(reference.steps.length).toBe(18);
});

describe('resume of a method with a momentum target and a queue (MoCo)', () => {
  it('checkpoints hold the key encoder, the queue and its pointer', () => {
    const { names } = lastCheckpointFiles(reference.runDir);
    expect(names).toEqual(expect.arrayContaining(['buffers.queue', 'buffers.pointer', 'target.backbone.conv1.weight']));
    expect(names.some((n) => n.startsWith('target.heads.projection.'))).toBe(true);
  });

  it('SIGKILL mid-epoch, then resume: the same losses and bit-identical final tensors', async () => {
    const outDir = tmp();
    const { exit, stderr, printed } = await runAndKill(
      'test/train/fixtures/pretrain-method-child.ts',
      [outDir, 'killed', '9'],
      9,
      { TINY_RECIPE: JSON.stringify(OVERRIDES) },
    );
    expect(exit, stderr).toBe('SIGKILL');
    expect(printed.length).toBe(9);
    const runDir = path.join(outDir, 'killed');
    expect(lastCheckpoint(runDir)).toBe('ckpt-000000008');

    const resumed = await pretrain(mocoRecipe(OVERRIDES), {
      components: methodComponents(),
      resume: runDir,
      progress: false,
    });
    expect(resumed.status).toBe('finished');
    const finished = stepLosses(MetricsLog.read(path.join(runDir, 'metrics.arrow')));
    expect(finished.slice(0, printed.length)).toEqual(printed);
    expect(finished).toEqual(reference.steps);
    expect(lastCheckpointFiles(runDir).bin.equals(lastCheckpointFiles(reference.runDir).bin)).toBe(true);
  });
});
