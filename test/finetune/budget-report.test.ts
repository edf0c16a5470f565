/** The budget report: cost in minutes per arm, and the validation split recipes are chosen on. */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initEngine } from '../../src/engine/backend.js';
import {
  type BudgetRow,
  type BudgetSubsets,
  budgetMarkdown,
  runBudget,
  summariseBudget,
  validationSplit,
} from '../../src/finetune/budget.js';
import { resolveFinetuneRecipe } from '../../src/recipes/finetune-recipe.js';
import { columnValues, readArrowTable } from '../../src/util/arrow.js';
import { createRng } from '../../src/util/rng.js';
import { writeClassFolders, writeTinyBackboneExport } from '../cli/fixtures.js';

function row(arm: string, seed: number, accuracy: number, seconds: number, valAccuracy = Number.NaN): BudgetRow {
  return {
    arm: arm as BudgetRow['arm'],
    perClass: 10,
    seed,
    trainImages: 20,
    epochs: 1,
    accuracy,
    valAccuracy,
    macroF1: accuracy,
    ece: 0,
    maskRate: Number.NaN,
    pseudoLabelAccuracy: Number.NaN,
    seconds,
  };
}

describe('budget summary and report', () => {
  it('gives every arm its mean wall minutes per run and the total', () => {
    const cells = summariseBudget([
      row('scratch', 0, 0.6, 60),
      row('pretrained', 0, 0.8, 90),
      row('scratch', 1, 0.7, 120),
      row('pretrained', 1, 0.8, 150),
    ]);
    expect(cells.map((c) => [c.arm, c.minutesMean, c.minutesTotal])).toEqual([
      ['scratch', 1.5, 3],
      ['pretrained', 2, 4],
    ]);
    expect(cells[0].accuracyMean).toBeCloseTo(0.65, 12);
    expect(cells[0].accuracyStd).toBeCloseTo(Math.sqrt(0.005), 12);
    const md = budgetMarkdown(cells);
    expect(md).toContain('| minutes/run | minutes total |');
    expect(md).toContain('| 10 | scratch | 2 | 65.0 ± 7.1 | 0.650 ± 0.071 | 1.50 | 3.00 |');
    expect(md).not.toContain('val accuracy');
  });

  it('shows validation accuracy only when the study had a validation split', () => {
    const md = budgetMarkdown(
      summariseBudget([row('pretrained', 0, 0.8, 30, 0.75), row('pretrained', 1, 0.9, 30, 0.85)]),
    );
    expect(md).toContain('| accuracy % (mean ± std) | val accuracy % (mean ± std) |');
    expect(md).toContain('| 10 | pretrained | 2 | 85.0 ± 7.1 | 80.0 ± 7.1 |');
  });

  it('draws a stratified validation split and leaves the rest', () => {
    const labels = Int32Array.from({ length: 30 }, (_, i) => i % 3);
    const { validation, rest } = validationSplit(labels, 3, 4, createRng(1));
    expect(validation).toHaveLength(12);
    expect(rest).toHaveLength(18);
    expect([0, 1, 2].map((c) => Array.from(validation).filter((p) => labels[p] === c).length)).toEqual([4, 4, 4]);
    expect(new Set([...validation, ...rest]).size).toBe(30);
  });
});

const tmp = mkdtempSync(path.join(os.tmpdir(), 'selfsup-budget-report-'));
const labeled = path.join(tmp, 'labeled');
const backbone = path.join(tmp, 'backbone');

beforeAll(async () => {
  expect(initEngine().backend).toBe('tensorflow');
  await writeClassFolders(labeled, 10, 2);
  await writeTinyBackboneExport(backbone, 16);
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('budget with a validation split', () => {
  it('evaluates on held-out pool images that no label subset takes, and writes the subsets and the cost', async () => {
    const recipe = resolveFinetuneRecipe({
      stages: [{ epochs: 1, trainable: ['all'] }],
      train: { batchSize: 4, stepsPerEpoch: 2 },
      augment: { train: 'medium' },
      eval: { holdout: 0.3 },
    });
    const out = path.join(tmp, 'study');
    const result = await runBudget({
      recipe,
      backbone,
      labels: labeled,
      perClass: [2],
      seeds: [0, 1],
      arms: ['scratch', 'pretrained'],
      valPerClass: 3,
      out,
    });
    // No --test: the validation split (3 per class of 2 classes) is the evaluation, not eval.holdout.
    expect(result.evaluatedOn).toBe('holdout');
    expect(result.testImages).toBe(6);
    expect(result.valImages).toBe(6);
    for (const r of result.rows) expect(r.valAccuracy).toBe(r.accuracy);
    const subsets = JSON.parse(readFileSync(path.join(out, 'subsets.json'), 'utf8')) as BudgetSubsets;
    expect(subsets.validation).toHaveLength(6);
    expect(subsets.subsets.map((s) => [s.perClass, s.seed, s.indices.length])).toEqual([
      [2, 0, 4],
      [2, 1, 4],
    ]);
    for (const s of subsets.subsets) for (const i of s.indices) expect(subsets.validation).not.toContain(i);
    const runs = readArrowTable(path.join(out, 'runs.arrow'));
    expect(columnValues(runs, 'val_accuracy')).toEqual(result.rows.map((r) => r.accuracy));
    const summary = readArrowTable(path.join(out, 'summary.arrow'));
    const minutes = columnValues(summary, 'minutes_total') as number[];
    expect(minutes.every((m) => m > 0)).toBe(true);
    const md = readFileSync(path.join(out, 'budget.md'), 'utf8');
    expect(md).toContain('val accuracy % (mean ± std)');
    expect(md).toMatch(/1-minute load average [\d.]+ at the start/);
  });
});
