/**
 * The training commands as a user chains them, on generated 16 px class folders:
 * pretrain -> finetune -> eval, and budget; each with a bad-input case.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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

const PROBE_RECIPE = `head: {hidden: []}
stages: [{epochs: 2, trainable: [head]}]
train: {batchSize: 8, optimizer: {name: adam, lr: 0.01}}
augment: {train: none}
eval: {holdout: 0}
labelProblems: {enabled: false}
`;

describe('selfsup pretrain / finetune / eval / budget (subprocess)', () => {
  let dir: string;
  let images: string;
  let run: string;
  let model: string;
  const recipe = (name: string, text: string) => {
    const file = path.join(dir, name);
    writeFileSync(file, text);
    return file;
  };
  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'selfsup-cli-train-'));
    images = path.join(dir, 'images');
    await writeClassFolders(images, 8);
    await ensureBuilt();
  }, 180_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('pretrain writes a run folder with checkpoint, metrics, curves and backbone', async () => {
    const r = await runCli([
      'pretrain',
      recipe('tiny.yaml', PRETRAIN_RECIPE),
      '--data',
      images,
      '--out',
      path.join(dir, 'runs'),
      '--run-id',
      'tiny',
      '--json',
    ]);
    expect(r.code, r.stderr).toBe(0);
    run = path.join(dir, 'runs', 'tiny');
    for (const file of ['recipe.resolved.yaml', 'metrics.arrow', 'curves.png', 'backbone/backbone.safetensors'])
      expect(existsSync(path.join(run, file)), file).toBe(true);
    expect(readFileSync(path.join(run, 'checkpoints', 'last'), 'utf8').trim()).toMatch(/^ckpt-\d+$/);
  });

  it('pretrain names an unknown recipe key and the keys it knows, exit 2', async () => {
    const bad = recipe('bad.yaml', 'task: {id: rotation}\ntrain: {epochs: 1, learningRate: 0.1}\n');
    const r = await runCli(['pretrain', bad, '--data', images, '--out', path.join(dir, 'runs')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      `selfsup: ${bad}: recipe.train.learningRate: Unknown key (known keys here: epochs, maxStepsPerEpoch, optimizer,`,
    );
  });

  it('finetune names an old-dialect recipe key and its new spelling, exit 2', async () => {
    const old = recipe('old.yaml', PROBE_RECIPE.replace('optimizer: {name: adam, lr: 0.01}', 'learningRate: 0.01'));
    const r = await runCli(['finetune', old, '--backbone', run, '--labels', images, '--out', path.join(dir, 'm')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      `selfsup: ${old}: recipe.train.learningRate: renamed: write train.optimizer.lr (finetuning recipes use the pretraining dialect)`,
    );
  });

  it('finetune on the run writes a model and a report; eval re-evaluates it', async () => {
    const probe = recipe('probe.yaml', PROBE_RECIPE);
    model = path.join(dir, 'model');
    const f = await runCli(['finetune', probe, '--backbone', run, '--labels', images, '--out', model, '--json']);
    expect(f.code, f.stderr).toBe(0);
    const summary = JSON.parse(f.stdout);
    expect(summary.trainImages).toBe(16);
    // The accuracy is a count of right answers over the test images, and report.json says the same.
    expect(summary.accuracy * summary.testImages).toBeCloseTo(Math.round(summary.accuracy * summary.testImages), 6);
    expect(summary.accuracy).toBeLessThanOrEqual(1);
    expect(JSON.parse(readFileSync(path.join(model, 'report', 'report.json'), 'utf8')).accuracy).toBe(summary.accuracy);
    for (const file of [
      'classifier.json',
      'report/report.json',
      'report/confusion.png',
      'summary.json',
      'metrics.arrow',
      'curves.png',
    ])
      expect(existsSync(path.join(model, file)), file).toBe(true);
    // The checkpoints of the finished run are gone with their folder.
    expect(existsSync(`${model}.training`)).toBe(false);

    const e = await runCli(['eval', model, '--labels', images, '--out', path.join(dir, 'eval'), '--json']);
    expect(e.code, e.stderr).toBe(0);
    expect(JSON.parse(e.stdout).images).toBe(16);
    expect(existsSync(path.join(dir, 'eval', 'confusion.png'))).toBe(true);
  });

  it('finetune --resume: nothing to resume (exit 2); an unfinished run blocks a fresh one (exit 2)', async () => {
    const probe = path.join(dir, 'probe.yaml');
    const out = path.join(dir, 'resumable');
    const args = ['finetune', probe, '--backbone', run, '--labels', images, '--out', out];
    const none = await runCli([...args, '--resume']);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain(`selfsup: nothing to resume: ${out}.training does not exist`);
    // A run folder left by a killed finetune (recipe and inputs recorded, no checkpoint yet).
    mkdirSync(`${out}.training`);
    const fresh = await runCli(args);
    expect(fresh.code).toBe(2);
    expect(fresh.stderr).toContain(
      `selfsup: ${out}.training holds an unfinished finetune of ${out}: pass --resume to continue it, or remove ${out}.training to start over`,
    );
    rmSync(`${out}.training`, { recursive: true });
  });

  it('finetune names a missing --labels path (exit 1); eval names a folder that is not a model (exit 1)', async () => {
    const missing = path.join(dir, 'no-labels');
    const f = await runCli([
      'finetune',
      path.join(dir, 'probe.yaml'),
      '--backbone',
      run,
      '--labels',
      missing,
      '--out',
      'x',
    ]);
    expect(f.code).toBe(1);
    expect(f.stderr).toContain(`selfsup: ${missing}: no such file or folder`);
    const e = await runCli(['eval', run, '--labels', images]);
    expect(e.code).toBe(1);
    expect(e.stderr).toContain(
      `selfsup: ${run}: not a finetuned model folder (no classifier.json; make one with \`selfsup finetune\`)`,
    );
  });

  it('budget compares scratch and pretrained over N per class; rejects a bad --per-class (exit 2)', async () => {
    const out = path.join(dir, 'budget');
    const b = await runCli([
      'budget',
      path.join(dir, 'probe.yaml'),
      '--backbone',
      run,
      '--labels',
      images,
      '--out',
      out,
      '--per-class',
      '2',
      '--seeds',
      '0',
      '--json',
    ]);
    expect(b.code, b.stderr).toBe(0);
    expect(
      JSON.parse(b.stdout)
        .rows.map((row: { arm: string }) => row.arm)
        .sort(),
    ).toEqual(['pretrained', 'scratch']);
    expect(existsSync(path.join(out, 'budget.png'))).toBe(true);
    const bad = await runCli([
      'budget',
      path.join(dir, 'probe.yaml'),
      '--backbone',
      run,
      '--labels',
      images,
      '--out',
      out,
      '--per-class',
      'a',
    ]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain(
      'selfsup: Expected a comma-separated list of integers >= 1 for --per-class but received "a"',
    );
  });
});
