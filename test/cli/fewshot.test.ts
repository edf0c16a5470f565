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
    await ensureBuilt();
  }, 180_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const args = (out: string) => [
    'fewshot',
    path.join(dir, 'pretrain.yaml'),
    path.join(dir, 'finetune.yaml'),
    '--data',
    dump,
    '--labels',
    labeled,
    '--out',
    out,
    '--json',
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
});
