/** Budget studies with init:<weights> arms: finetune like `pretrained`, from other weights. */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBackbone } from '../../src/backbones/registry.js';
import { initEngine } from '../../src/engine/backend.js';
import { saveBackbone } from '../../src/export/backbone-store.js';
import { checkBudgetArm, runBudget } from '../../src/finetune/budget.js';
import { resolveFinetuneRecipe } from '../../src/recipes/finetune-recipe.js';
import { columnValues, readArrowTable } from '../../src/util/arrow.js';
import { writeClassFolders, writeTinyBackboneExport } from '../cli/fixtures.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'selfsup-budget-init-'));
const labeled = path.join(tmp, 'labeled');
const backbone = path.join(tmp, 'backbone');
const other = path.join(tmp, 'other');

beforeAll(async () => {
  expect(initEngine().backend).toBe('tensorflow');
  await writeClassFolders(labeled, 10, 1);
  await writeTinyBackboneExport(backbone, 16);
  const different = createBackbone('resnet18', { inputChannels: 1, stem: 'small', widthMultiplier: 0.125, seed: 9 });
  await saveBackbone(different, other, { inputSize: 16, pretextTask: 'random-init' });
  different.dispose();
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('budget init:<weights> arms', () => {
  const recipe = resolveFinetuneRecipe({
    stages: [{ epochs: 2, trainable: ['all'] }],
    train: { batchSize: 4 },
    probe: { epochs: 3, batchSize: 4 },
    eval: { holdout: 0.3 },
  });

  it('runs each init arm from its own weights (init:<the --backbone> reproduces pretrained exactly)', async () => {
    const out = path.join(tmp, 'study');
    const arms = ['pretrained', `init:${backbone}`, `init:${other}`].map(checkBudgetArm);
    const result = await runBudget({ recipe, backbone, labels: labeled, perClass: [2], seeds: [0], arms, out });
    const runs = readArrowTable(path.join(out, 'runs.arrow'));
    expect(columnValues(runs, 'arm')).toEqual(arms);
    const [pretrained, same] = result.rows;
    expect(same.accuracy).toBe(pretrained.accuracy);
    expect(same.macroF1).toBe(pretrained.macroF1);
    expect(result.cells.map((c) => c.arm)).toEqual(arms);
  });

  it('a self-training arm pseudo-labels the pool (labels hidden) and reports its coverage and accuracy', async () => {
    const out = path.join(tmp, 'self-training');
    const arms = ['pretrained', 'pretrained+self-training'].map(checkBudgetArm);
    const lines: string[] = [];
    const result = await runBudget({
      // threshold 0 and no cap: every pool image gets a pseudo-label.
      recipe: {
        ...recipe,
        selfTraining: { rounds: 0, threshold: 0, maxPerClass: null, labeledShare: 0.5, studentFixmatch: true },
      },
      backbone,
      labels: labeled,
      perClass: [2],
      seeds: [0],
      arms,
      out,
      log: (line) => lines.push(line),
    });
    const [plain, selfTrained] = result.rows;
    expect(plain.maskRate).toBeNaN();
    expect(selfTrained.maskRate).toBe(1);
    expect(selfTrained.pseudoLabelAccuracy).toBeGreaterThanOrEqual(0);
    expect(selfTrained.pseudoLabelAccuracy).toBeLessThanOrEqual(1);
    // Rounds 0 in the recipe: the arm still runs one.
    expect(lines.filter((l) => / round 1: /.test(l))).toHaveLength(1);
    expect(lines.filter((l) => / round 2: /.test(l))).toHaveLength(0);
    // Which step the runs use, said once for the whole study.
    expect(lines.filter((l) => l.startsWith('training step: '))).toEqual([
      'training step: eager step, float32 (recipe.train.compile is off)',
    ]);
  });

  it("a long run says how far it is, with FixMatch's mask rate and pseudo-label accuracy", async () => {
    const lines: string[] = [];
    const long = resolveFinetuneRecipe({
      stages: [{ epochs: 20, trainable: ['all'] }],
      train: { batchSize: 4, stepsPerEpoch: 1 },
      probe: { epochs: 2, batchSize: 4 },
      fixmatch: { ratio: 1, threshold: 0 },
      eval: { holdout: 0.3 },
    });
    const study = (progress: boolean, out: string) =>
      runBudget({
        recipe: long,
        backbone,
        labels: labeled,
        perClass: [2],
        seeds: [0],
        arms: [checkBudgetArm('pretrained+fixmatch')],
        out: path.join(tmp, out),
        progress,
        log: (line) => lines.push(line),
      });
    await study(true, 'long');
    const progress = lines.filter((l) => l.startsWith('pretrained+fixmatch 2/class seed 0: epoch '));
    // Every second epoch of 20 (the probe's 2 not counted), each with FixMatch's figures.
    expect(progress.map((l) => Number(/epoch (\d+)\/20/.exec(l)?.[1]))).toEqual([2, 4, 6, 8, 10, 12, 14, 16, 18, 20]);
    for (const line of progress)
      expect(line).toMatch(/loss \d+\.\d{3}, mask rate \d+%, pseudo-labels \d+\.\d% right, \d+\.\d min$/);
    lines.length = 0;
    await study(false, 'long-quiet');
    expect(lines.filter((l) => / epoch \d+\/20/.test(l))).toEqual([]);
  });

  it('rejects an empty init: arm and weights with other input channels', async () => {
    expect(() => checkBudgetArm('init:')).toThrow(
      'Expected names from scratch, pretrained, pretrained+fixmatch, pretrained+self-training, pretrained+fixmatch+self-training or init:<weights> for --arms but received "init:" (string)',
    );
    const threeChannels = path.join('test', 'fixtures', 'torch', 'checkpoints', 'r18-zip.pth');
    await expect(
      runBudget({
        recipe,
        backbone,
        labels: labeled,
        perClass: [2],
        seeds: [0],
        arms: ['pretrained', `init:${threeChannels}`],
        out: path.join(tmp, 'bad'),
      }),
    ).rejects.toThrow(`--arms init:${threeChannels} takes 3-channel input but --backbone takes 1`);
  });
});
