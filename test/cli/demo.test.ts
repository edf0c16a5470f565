import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, runCli } from '../support/cli.js';

describe('selfsup demo (subprocess)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'selfsup-cli-demo-'));
    await ensureBuilt();
  }, 180_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('--quick runs scan, pretrain, export, finetune and embed on the shipped data and prints every output', async () => {
    const out = path.join(dir, 'demo');
    const r = await runCli(['demo', '--quick', '--out', out], { timeoutMs: 300_000 });
    expect(r.code, r.stderr).toBe(0);
    for (const label of [
      'checkpoint',
      'training curves',
      'export (PyTorch)',
      'export (tfjs)',
      'report',
      'embedding map',
    ])
      expect(r.stdout).toContain(label);
    for (const file of [
      'scan/manifest.arrow',
      'pretrain/curves.png',
      'export/safetensors/backbone.safetensors',
      'export/tfjs/model.json',
      'finetune/report/report.md',
      'embed/map.png',
      'demo.json',
    ])
      expect(existsSync(path.join(out, file)), file).toBe(true);
    expect(r.stdout).toContain(path.join(out, 'export', 'tfjs'));
  }, 300_000);

  it('refuses to write into a non-empty folder it did not make, exit 2', async () => {
    const taken = path.join(dir, 'taken');
    mkdirSync(taken);
    writeFileSync(path.join(taken, 'notes.txt'), 'mine');
    const r = await runCli(['demo', '--quick', '--out', taken]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      `selfsup: --out ${taken} is not empty and was not written by selfsup (no .selfsup-output.json); selfsup writes only into a new or empty folder or one of its own outputs: pass another folder`,
    );
    expect(existsSync(path.join(taken, 'notes.txt'))).toBe(true);
  });

  it('names a data folder without the demo layout, exit 1', async () => {
    const r = await runCli(['demo', '--quick', '--out', path.join(dir, 'other'), '--data', dir]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      `selfsup: ${path.join(dir, 'unlabeled')}: missing: the demo data folder needs unlabeled/, labeled/ and test/ (they ship in the git repository, not in the npm package; pass --data <folder>)`,
    );
  });
});
