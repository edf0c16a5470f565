/**
 * `selfsup fewshot`: pretrain on a dump, then finetune with the dump as unlabeled
 * images (self-training), in one command, on generated 16 px class folders; the
 * same command again after a finished pretraining reuses it.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, runCli } from '../support/cli.js';
import { writeClassFolders } from './fixtures.js';

const PRETRAIN_RECIPE = `name: tiny
seed: 0
task: {id: rotation, options: {mode: random-one}}
backbone: {arch: resnet18, widthMultiplier: 0.125, stem: small}
input: {size: 16, channels: 1}
data: {batchSize: 4, workers: 0}
train: {epochs: 1, maxStepsPerEpoch: 2}
`;

const FINETUNE_RECIPE = `stages: [{epochs: 2, trainable: [all]}]
train: {batchSize: 8, optimizer: {name: adam, lr: 0.01}}
augment: {train: weak}
selfTraining: {rounds: 1, threshold: 0, maxPerClass: 3}
labelProblems: {enabled: false}
`;

// FixMatch over 20 short epochs: long enough for the progress lines (one every tenth of the epochs).
const FIXMATCH_RECIPE = `stages: [{epochs: 20, trainable: [all]}]
train: {batchSize: 4, stepsPerEpoch: 1, optimizer: {name: sgd, lr: 0.01}}
augment: {train: weak}
fixmatch: {enabled: true, ratio: 1, thresholdSchedule: self-adaptive}
labelProblems: {enabled: false}
`;

describe('selfsup fewshot (subprocess)', () => {
  let dir: string;
  let labeled: string;
  let dump: string;
  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'selfsup-cli-fewshot-'));
    labeled = path.join(dir, 'labeled');
    dump = path.join(dir, 'dump');
    await writeClassFolders(labeled, 6, 1);
    await writeClassFolders(dump, 6, 2);
    writeFileSync(path.join(dir, 'pretrain.yaml'), PRETRAIN_RECIPE);
    writeFileSync(path.join(dir, 'finetune.yaml'), FINETUNE_RECIPE);
    writeFileSync(path.join(dir, 'fixmatch.yaml'), FIXMATCH_RECIPE);
    await ensureBuilt();
  }, 180_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  // --json keeps stderr's progress lines quiet; the progress test leaves it out.
  const args = (out: string, finetune = 'finetune.yaml', json = true) => [
    'fewshot',
    path.join(dir, 'pretrain.yaml'),
    path.join(dir, finetune),
    '--data',
    dump,
    '--labels',
    labeled,
    '--out',
    out,
    ...(json ? ['--json'] : []),
  ];

  it('pretrains, then self-trains on the dump; records both stages', async () => {
    const out = path.join(dir, 'out');
    const r = await runCli(args(out));
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout);
    expect(result.pretrainReused).toBe(false);
    expect(existsSync(path.join(out, 'pretrain', 'backbone', 'backbone.safetensors'))).toBe(true);
    expect(existsSync(path.join(out, 'model', 'classifier.safetensors'))).toBe(true);
    expect(existsSync(path.join(out, 'model.training'))).toBe(false);
    const summary = JSON.parse(readFileSync(path.join(out, 'model', 'summary.json'), 'utf8'));
    // Class folders without a test set: the recipe's holdout; the dump's images are the unlabeled set.
    expect(summary.unlabeledImages).toBeGreaterThan(0);
    expect(summary.selfTraining.rounds).toHaveLength(1);
    // maxPerClass 3 over the 2 classes (threshold 0: any prediction qualifies).
    expect(summary.selfTraining.rounds[0].pseudoLabeled).toBeGreaterThan(0);
    expect(summary.selfTraining.rounds[0].pseudoLabeled).toBeLessThanOrEqual(3 * 2);
    const record = JSON.parse(readFileSync(path.join(out, 'fewshot.json'), 'utf8'));
    expect(record.recipes.pretrain).toBe(path.join(dir, 'pretrain.yaml'));
    expect(record.minutes.pretrain).toBeGreaterThan(0);
    expect(record.finetune.accuracy).toBe(summary.accuracy);

    // A finished model is not overwritten.
    const again = await runCli(args(out));
    expect(again.code).toBe(2);
    expect(again.stderr).toContain(`${path.join(out, 'model')} already holds a finished model`);
  }, 240_000);

  it('reuses a finished pretraining in the output folder', async () => {
    const out = path.join(dir, 'out');
    rmSync(path.join(out, 'model'), { recursive: true, force: true });
    const r = await runCli(args(out));
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).pretrainReused).toBe(true);
  }, 240_000);

  it('prints FixMatch progress every tenth of a long finetune, with the mask rate', async () => {
    const out = path.join(dir, 'out-fixmatch');
    const r = await runCli(args(out, 'fixmatch.yaml', false));
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stderr.split(/[\r\n]+/).filter((l) => l.startsWith('finetune: epoch '));
    expect(lines.map((l) => Number(/epoch (\d+)\/20/.exec(l)?.[1]))).toEqual([2, 4, 6, 8, 10, 12, 14, 16, 18, 20]);
    // The dump is read as unlabeled images (its folders' names unused): the mask rate, no pseudo-label accuracy.
    for (const line of lines) expect(line).toMatch(/loss \d+\.\d{3}, mask rate \d+%, \d+\.\d min$/);
  }, 240_000);
});
