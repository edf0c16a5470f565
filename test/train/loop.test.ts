import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initEngine } from '../../src/engine/index.js';
import { DivergenceError, pretrain } from '../../src/train/loop.js';
import { readArrowTable } from '../../src/util/arrow.js';
import { makeSource, tinyComponents, tinyRecipe } from '../support/pretraining.js';

const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'selfsup-loop-'));

beforeAll(() => {
  expect(initEngine({ quiet: true }).backend).toBe('tensorflow');
});

describe('pretrain loop', () => {
  it('loss goes down, writes a run folder, metrics and curves', async () => {
    const outDir = tmp();
    const source = makeSource(64);
    const result = await pretrain(tinyRecipe({ train: { epochs: 4 } }), {
      outDir,
      source,
      validationSource: makeSource(40, 8, 9),
      components: tinyComponents(source),
      progress: false,
    });
    expect(result.status).toBe('finished');
    const losses = result.losses;
    expect(losses.length).toBe(4 * 8);
    const first = losses.slice(0, 4).reduce((a, b) => a + b) / 4;
    const last = losses.slice(-4).reduce((a, b) => a + b) / 4;
    expect(last).toBeLessThan(first * 0.7);
    for (const f of [
      'recipe.resolved.yaml',
      'metrics.arrow',
      'curves.png',
      'status.json',
      'checkpoints/last',
      'backbone',
    ]) {
      expect(existsSync(path.join(result.runDir, f)), f).toBe(true);
    }
    const table = readArrowTable(path.join(result.runDir, 'metrics.arrow'));
    expect(table.numRows).toBe(32 + 4);
    const names = table.schema.fields.map((f) => f.name);
    for (const n of ['loss', 'lr', 'imagesPerSecond', 'dataWaitMs', 'accuracy', 'knnAccuracy', 'embeddingSpread']) {
      expect(names).toContain(n);
    }
    const epochRows = result.metrics.epochRows();
    expect(epochRows.map((r) => r.epoch)).toEqual([0, 1, 2, 3]);
    expect(epochRows.every((r) => r.knnAccuracy >= 0 && r.knnAccuracy <= 1)).toBe(true);
    const status = JSON.parse(readFileSync(path.join(result.runDir, 'status.json'), 'utf8'));
    expect(status.status).toBe('finished');
    // keepCheckpoints (3) newest remain
    const ckpts = readdirSync(path.join(result.runDir, 'checkpoints')).filter((n) => n.startsWith('ckpt-'));
    expect(ckpts.length).toBe(3);
  });

  it('same seed gives the same losses; another seed differs', async () => {
    const run = async (seed: number) =>
      (
        await pretrain(tinyRecipe({ seed, train: { epochs: 1 } }), {
          outDir: tmp(),
          components: tinyComponents(),
          dataPath: 'generated',
          progress: false,
        })
      ).losses;
    const a = await run(5);
    const b = await run(5);
    const c = await run(6);
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
  });

  it('the collapse alarm warns (once per epoch) when embeddings stop spreading', async () => {
    const warnings: string[] = [];
    const recipe = tinyRecipe({ train: { epochs: 2 }, monitor: { collapse: { everySteps: 1 } } });
    recipe.task.options = { collapsedEmbeddings: true };
    const run = (r: typeof recipe) =>
      pretrain(r, {
        outDir: tmp(),
        components: tinyComponents(),
        dataPath: 'generated',
        progress: false,
        onEvent: (e) => {
          if (e.type === 'warning') warnings.push(e.message);
        },
      });
    const result = await run(recipe);
    expect(warnings.length).toBe(2);
    expect(warnings[0]).toMatch(
      /^possible collapse at epoch 0, step 0: embedding spread \S+ is below 0\.1 x 1\/sqrt\(16\) = 2\.50e-2$/,
    );
    const healthy = await run(tinyRecipe({ train: { epochs: 1 }, monitor: { collapse: { everySteps: 1 } } }));
    expect(warnings.length).toBe(2);
    expect(result.metrics.stepRows()[0].embeddingSpread).toBeLessThan(1e-4);
    expect(healthy.metrics.stepRows()[0].embeddingSpread).toBeGreaterThan(0.1 / Math.sqrt(16));
  });

  it('tensor count is flat across steps', async () => {
    const counts: number[] = [];
    await pretrain(tinyRecipe({ train: { epochs: 2 }, monitor: { collapse: { everySteps: 2 } } }), {
      outDir: tmp(),
      components: tinyComponents(),
      dataPath: 'generated',
      progress: false,
      onEvent: (e) => {
        if (e.type === 'step') counts.push(tf.memory().numTensors);
      },
    });
    expect(counts.length).toBe(12);
    expect(new Set(counts.slice(1)).size).toBe(1);
  });

  it('a NaN loss stops the run naming the step and keeps the last good checkpoint', async () => {
    const outDir = tmp();
    const recipe = tinyRecipe({ train: { epochs: 3 } });
    recipe.task.options = { nanAfterSteps: 8 };
    let error: unknown;
    try {
      await pretrain(recipe, { outDir, components: tinyComponents(), dataPath: 'x', progress: false, runId: 'nan' });
    } catch (e) {
      error = e;
    }
    const runDir = path.join(outDir, 'nan');
    const good = path.join(runDir, 'checkpoints', 'ckpt-000000006');
    expect(error).toBeInstanceOf(DivergenceError);
    expect((error as Error).message).toBe(
      `training stopped at epoch 1, step 2 (global step 9): the loss is NaN; the last good checkpoint is ${good}. ` +
        'Lower the learning rate (recipe.train.optimizer.lr or --lr-override 1=LR) or set recipe.train.gradClipNorm, then resume.',
    );
    expect(readFileSync(path.join(runDir, 'checkpoints', 'last'), 'utf8').trim()).toBe('ckpt-000000006');
    expect(readdirSync(path.join(runDir, 'checkpoints')).filter((n) => n.startsWith('ckpt-'))).toEqual([
      'ckpt-000000006',
    ]);
    const bin = readFileSync(path.join(good, 'tensors.bin'));
    expect(new Float32Array(bin.buffer, bin.byteOffset, bin.byteLength / 4).every(Number.isFinite)).toBe(true);
    const status = JSON.parse(readFileSync(path.join(runDir, 'status.json'), 'utf8'));
    expect(status.status).toBe('diverged');
    // The metrics so far are kept (8 good steps + 1 epoch row).
    expect(readArrowTable(path.join(runDir, 'metrics.arrow')).numRows).toBe(9);
  });

  it('an exploding loss stops the run by the explode factor', async () => {
    const recipe = tinyRecipe({
      train: { epochs: 3, optimizer: { lr: 5, momentum: 0 }, divergence: { explodeFactor: 3, maxLoss: 1e30 } },
    });
    recipe.task.options = { lossScale: 1e3 };
    await expect(
      pretrain(recipe, { outDir: tmp(), components: tinyComponents(), dataPath: 'x', progress: false }),
    ).rejects.toThrow(
      /^training stopped at epoch 0, step \d \(global step \d\): the loss exploded to .* more than recipe.train.divergence.explodeFactor \(3\) times the first loss/,
    );
  });
});
