/**
 * The online linear probe: a detached linear head trained on each pretraining
 * batch's features when the images carry labels. It learns separable features,
 * logs `probeAccuracy` per step, keeps the tensor count flat, is checkpointed
 * (resume stays bit-identical) and stays off without labels.
 */
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initEngine } from '../../src/engine/index.js';
import { pretrain } from '../../src/train/loop.js';
import { createOnlineProbe, OnlineProbe } from '../../src/train/online-probe.js';
import { createRng } from '../../src/util/rng.js';
import { makeSource, tinyComponents, tinyRecipe } from '../support/pretraining.js';

const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'selfsup-probe-'));
const config = { enabled: true, learningRate: 0.5, weightDecay: 0 };

beforeAll(() => {
  expect(initEngine({ quiet: true }).backend).toBe('tensorflow');
});

describe('online linear probe', () => {
  it('learns linearly separable features; unlabelled rows are skipped', async () => {
    const rng = createRng('probe-data');
    const probe = new OnlineProbe(4, 3, config, createRng('probe'));
    const batch = (n: number) => {
      const labels = Int32Array.from({ length: n }, () => rng.int(3));
      const values = Array.from(labels, (y) => [0, 1, 2, 3].map((d) => (d === y ? 2 : 0) + 0.3 * rng.normal()));
      return { features: tf.tensor2d(values), labels };
    };
    const accuracies: number[] = [];
    for (let i = 0; i < 30; i++) {
      const { features, labels } = batch(16);
      accuracies.push(await probe.update(features, labels));
      features.dispose();
    }
    expect(accuracies.slice(-5).every((a) => a > 0.9)).toBe(true);
    const unlabelled = tf.zeros([4, 4]) as tf.Tensor2D;
    expect(await probe.update(unlabelled, Int32Array.from([-1, -1, -1, -1]))).toBeNaN();
    unlabelled.dispose();
    expect(probe.variables().map((v) => v.name)).toEqual([
      'monitor.probe.weight',
      'monitor.probe.bias',
      'monitor.probe.weight_momentum',
      'monitor.probe.bias_momentum',
    ]);
    probe.dispose();
  });

  it('is created only when enabled and the images carry labels of 2 or more classes', () => {
    const rng = createRng(1);
    expect(
      createOnlineProbe({ ...config, enabled: false }, Int32Array.from([0, 1]), undefined, 4, rng),
    ).toBeUndefined();
    expect(createOnlineProbe(config, undefined, undefined, 4, rng)).toBeUndefined();
    expect(createOnlineProbe(config, Int32Array.from([0, 0, -1]), undefined, 4, rng)).toBeUndefined();
    const probe = createOnlineProbe(config, Int32Array.from([0, 1, -1]), ['a', 'b', 'c'], 4, rng);
    expect(probe?.numClasses).toBe(3);
    probe?.dispose();
  });

  it('runs in the loop on labelled images: probeAccuracy per step, flat tensor count; off without labels', async () => {
    const counts: number[] = [];
    const run = await pretrain(tinyRecipe({ train: { epochs: 2 } }), {
      outDir: tmp(),
      components: tinyComponents(),
      dataPath: 'generated',
      progress: false,
      onEvent: (e) => {
        if (e.type === 'step') counts.push(tf.memory().numTensors);
      },
    });
    const accuracies = run.metrics.stepRows().map((r) => r.probeAccuracy as number);
    expect(accuracies.length).toBe(12);
    expect(accuracies.every((a) => a >= 0 && a <= 1)).toBe(true);
    expect(run.metrics.epochRows().every((r) => Number.isFinite(r.probeAccuracy))).toBe(true);
    expect(new Set(counts.slice(1)).size).toBe(1);

    const unlabelled = makeSource(48);
    const { labels: _labels, ...withoutLabels } = unlabelled;
    const plain = await pretrain(tinyRecipe({ train: { epochs: 1 } }), {
      outDir: tmp(),
      components: tinyComponents(withoutLabels),
      dataPath: 'generated',
      progress: false,
    });
    expect(plain.metrics.columnNames()).not.toContain('probeAccuracy');
  });
});
