import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initEngine } from '../../src/engine/backend.js';
import { runBudget } from '../../src/finetune/budget.js';
import { runEvaluation } from '../../src/finetune/eval-job.js';
import { runFinetune } from '../../src/finetune/run.js';
import { resolveFinetuneRecipe } from '../../src/recipes/finetune-recipe.js';
import { columnValues, readArrowTable } from '../../src/util/arrow.js';
import { writeBrokenPng, writeClassFolders, writeTinyBackboneExport } from '../cli/fixtures.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'selfsup-finetune-e2e-'));
const labeled = path.join(tmp, 'labeled');
const unlabeled = path.join(tmp, 'unlabeled');
const backbone = path.join(tmp, 'backbone');

describe('finetune end to end (narrow ResNet-18 export, PNG class folders)', () => {
  beforeAll(async () => {
    expect(initEngine().backend).toBe('tensorflow');
    await writeClassFolders(labeled, 10, 1);
    await writeClassFolders(unlabeled, 6, 2);
    writeBrokenPng(path.join(unlabeled, 'broken.png'));
    mkdirSync(tmp, { recursive: true });
    await writeTinyBackboneExport(backbone, 16);
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it('finetune with FixMatch writes the model, report, label review and history; eval reloads it', async () => {
    const recipe = resolveFinetuneRecipe({
      name: 'tiny',
      stages: [
        { epochs: 1, trainable: ['head'] },
        { epochs: 1, trainable: ['layer4', 'head'] },
      ],
      train: { batchSize: 4, optimizer: { lr: 0.01 } },
      augment: { train: 'weak' },
      fixmatch: { enabled: true, threshold: 0.5, ratio: 1, warmupEpochs: 0 },
      eval: { holdout: 0.25 },
      labelProblems: { k: 3, folds: 2 },
    });
    const before = tf.memory().numTensors;
    const out = path.join(tmp, 'model');
    const summary = await runFinetune({
      recipe,
      backbone,
      labels: labeled,
      unlabeled,
      out,
      subsets: { flipFraction: 0.2 },
    });
    expect(tf.memory().numTensors).toBe(before);
    expect(summary.evaluatedOn).toBe('holdout');
    expect(summary.trainImages + summary.testImages).toBe(20);
    expect(summary.unlabeledImages).toBe(12);
    expect(summary.skippedImages).toBe(1); // broken.png is recorded and skipped
    expect(summary.maskRate).toBeGreaterThanOrEqual(0);
    expect(summary.maskRate).toBeLessThanOrEqual(1);
    // 15 training images, 20% flipped = 3: precision at 3 is 0, 1/3, 2/3 or 1.
    expect(summary.flippedPrecisionAtK * 3).toBeCloseTo(Math.round(summary.flippedPrecisionAtK * 3), 6);
    expect(summary.flippedPrecisionAtK).toBeLessThanOrEqual(1);
    for (const f of [
      'classifier.json',
      'classifier.safetensors',
      'backbone/backbone.safetensors',
      'recipe.yaml',
      'history.arrow',
      'label-review.arrow',
      'imbalance.json',
      'skipped.json',
      'report/report.json',
      'report/confusion.png',
      'report/reliability.png',
      'report/predictions.arrow',
    ]) {
      expect(existsSync(path.join(out, f)), f).toBe(true);
    }
    expect(readArrowTable(path.join(out, 'history.arrow')).numRows).toBe(2);
    const review = readArrowTable(path.join(out, 'label-review.arrow'));
    expect(review.numRows).toBe(summary.trainImages);
    expect(columnValues(review, 'rank').slice(0, 3)).toEqual([1, 2, 3]);
    const report = JSON.parse(readFileSync(path.join(out, 'report/report.json'), 'utf8'));
    expect(report.accuracy).toBeCloseTo(summary.accuracy, 10);

    const evaluated = await runEvaluation({ model: out, labels: labeled, out: path.join(tmp, 'eval') });
    expect(evaluated.images).toBe(20);
    expect(existsSync(path.join(tmp, 'eval', 'report.md'))).toBe(true);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('budget study: scratch vs pretrained over label counts and seeds', async () => {
    const recipe = resolveFinetuneRecipe({
      stages: [{ epochs: 2, trainable: ['all'] }],
      train: { batchSize: 4 },
      probe: { epochs: 3, batchSize: 4 },
      eval: { holdout: 0.3 },
    });
    const out = path.join(tmp, 'budget');
    const result = await runBudget({
      recipe,
      backbone,
      labels: labeled,
      perClass: [2],
      seeds: [0, 1],
      arms: ['scratch', 'pretrained'],
      out,
    });
    expect(result.rows).toHaveLength(4);
    expect(result.cells).toHaveLength(2);
    expect(result.cells[0].runs).toBe(2);
    const runs = readArrowTable(path.join(out, 'runs.arrow'));
    expect(columnValues(runs, 'train_images').slice(0, 2)).toEqual([4, 4]);
    // The pretrained arm runs the recipe's linear probe first; the scratch arm skips it.
    expect(columnValues(runs, 'arm')).toEqual(['scratch', 'pretrained', 'scratch', 'pretrained']);
    expect(columnValues(runs, 'epochs')).toEqual([2, 5, 2, 5]);
    expect(readFileSync(path.join(out, 'budget.md'), 'utf8')).toContain('| 2 | scratch | 2 |');
    expect(existsSync(path.join(out, 'budget.png'))).toBe(true);
  });

  it('clear errors: FixMatch without --unlabeled, labels without classes', async () => {
    const recipe = resolveFinetuneRecipe({ fixmatch: { enabled: true } });
    await expect(runFinetune({ recipe, backbone, labels: labeled, out: path.join(tmp, 'x') })).rejects.toThrow(
      'the recipe enables fixmatch: pass --unlabeled <folder|idx> with the unlabeled images',
    );
    await expect(
      runFinetune({
        recipe: resolveFinetuneRecipe({}),
        backbone,
        labels: path.join(tmp, 'nothing'),
        out: path.join(tmp, 'y'),
      }),
    ).rejects.toThrow(/nothing: no such file or folder/);
  });
});
