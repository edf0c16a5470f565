import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initEngine } from '../../src/engine/index.js';
import {
  lastCheckpoint,
  loadCheckpoint,
  removeStaleTemporaries,
  saveCheckpoint,
  type TrainingState,
} from '../../src/train/checkpoint.js';
import { MetricsLog } from '../../src/train/metrics.js';

beforeAll(() => {
  expect(initEngine({ quiet: true }).backend).toBe('tensorflow');
});

const state = (globalStep: number): TrainingState => ({
  epoch: 0,
  step: globalStep,
  globalStep,
  stepsPerEpoch: 100,
  seed: 1,
  referenceLoss: 2,
  optimizer: { name: 'sgd', steps: globalStep },
  rngState: {},
  savedAt: 'now',
});

describe('checkpoints', () => {
  it('round-trip variables, state and metrics; keep the newest N', async () => {
    const runDir = mkdtempSync(path.join(os.tmpdir(), 'selfsup-ckpt-'));
    const w = tf.variable(
      tf.tensor2d([
        [1, 2],
        [3, 4],
      ]),
    );
    const n = tf.variable(tf.tensor1d([7], 'int32'));
    const vars = [
      { name: 'backbone.w', variable: w },
      { name: 'count', variable: n },
    ];
    const metrics = new MetricsLog();
    for (const step of [1, 2, 3]) {
      metrics.add({ kind: 'step', epoch: 0, step, globalStep: step, loss: step / 10 } as never);
      tf.tidy(() => w.assign(w.add(1)));
      await saveCheckpoint(runDir, vars, state(step), metrics, 2);
    }
    expect(readdirSync(path.join(runDir, 'checkpoints')).sort()).toEqual(['ckpt-000000002', 'ckpt-000000003', 'last']);
    tf.tidy(() => w.assign(tf.zeros([2, 2])));
    const loaded = loadCheckpoint(lastCheckpoint(runDir)!, vars);
    expect(Array.from(w.dataSync())).toEqual([4, 5, 6, 7]);
    expect(Array.from(n.dataSync())).toEqual([7]);
    expect(loaded.state.globalStep).toBe(3);
    expect(loaded.metrics.rows.map((r) => r.loss)).toEqual([0.1, 0.2, 0.3]);
    const wrong = [{ name: 'backbone.w', variable: tf.variable(tf.zeros([3])) }];
    expect(() => loadCheckpoint(lastCheckpoint(runDir)!, wrong)).toThrow(
      /tensors\.json: variable "backbone\.w" has shape \[2,2\] in the checkpoint but \[3\] in the model$/,
    );
    tf.dispose([w, n, wrong[0].variable]);
  });

  it('a write that dies half-way leaves the previous checkpoint and pointer untouched', async () => {
    const runDir = mkdtempSync(path.join(os.tmpdir(), 'selfsup-ckpt-'));
    const w = tf.variable(tf.ones([4]));
    const vars = [{ name: 'w', variable: w }];
    await saveCheckpoint(runDir, vars, state(5), new MetricsLog(), 3);
    await expect(
      saveCheckpoint(runDir, vars, state(6), new MetricsLog(), 3, async (dir) => {
        writeFileSync(path.join(dir, 'partial.bin'), 'x');
        throw new Error('disk full');
      }),
    ).rejects.toThrow('disk full');
    expect(readFileSync(path.join(runDir, 'checkpoints', 'last'), 'utf8').trim()).toBe('ckpt-000000005');
    expect(readdirSync(path.join(runDir, 'checkpoints')).sort()).toEqual(['ckpt-000000005', 'last']);

    // A process killed mid-write leaves a hidden temporary: never pointed at, removed on resume.
    const stale = path.join(runDir, 'checkpoints', '.ckpt-000000006.4242.abcd1234.tmp');
    mkdirSync(stale);
    writeFileSync(path.join(stale, 'tensors.bin'), 'half');
    expect(lastCheckpoint(runDir)).toBe(path.join(runDir, 'checkpoints', 'ckpt-000000005'));
    expect(await removeStaleTemporaries(runDir)).toEqual(['.ckpt-000000006.4242.abcd1234.tmp']);
    expect(existsSync(stale)).toBe(false);
    w.dispose();
  });

  it('a pointer to a missing checkpoint is an error naming the pointer', async () => {
    const runDir = mkdtempSync(path.join(os.tmpdir(), 'selfsup-ckpt-'));
    mkdirSync(path.join(runDir, 'checkpoints'));
    writeFileSync(path.join(runDir, 'checkpoints', 'last'), 'ckpt-000000009\n');
    expect(() => lastCheckpoint(runDir)).toThrow(
      `${path.join(runDir, 'checkpoints', 'last')}: points at "ckpt-000000009", which is not a complete checkpoint`,
    );
  });
});
