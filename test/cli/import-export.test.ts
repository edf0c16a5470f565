import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initEngine } from '../../src/engine/backend.js';
import { decodeSafetensors } from '../../src/export/safetensors.js';
import { ensureBuilt, runCli } from '../support/cli.js';
import { writeTinyBackboneExport } from './fixtures.js';

describe('selfsup import / export (subprocess)', () => {
  let dir: string;
  let weights: string;
  beforeAll(async () => {
    initEngine();
    dir = mkdtempSync(path.join(os.tmpdir(), 'selfsup-cli-io-'));
    weights = path.join(await writeTinyBackboneExport(path.join(dir, 'tiny')), 'backbone.safetensors');
    await ensureBuilt();
  }, 180_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('imports torchvision-named safetensors (architecture inferred) and exports tfjs and safetensors', async () => {
    const imported = path.join(dir, 'imported');
    const r = await runCli(['import', weights, '--out', imported, '--input-size', '16', '--json']);
    expect(r.code, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout).manifest).toMatchObject({ architecture: 'resnet18', stem: 'small', inputChannels: 1 });
    expect(existsSync(path.join(imported, 'backbone.safetensors'))).toBe(true);

    const tfjs = path.join(dir, 'tfjs');
    const t = await runCli(['export', imported, '--format', 'tfjs', '--out', tfjs, '--json']);
    expect(t.code, t.stderr).toBe(0);
    expect(JSON.parse(t.stdout).format).toBe('tfjs');
    expect(JSON.parse(readFileSync(path.join(tfjs, 'model.json'), 'utf8')).modelTopology).toBeDefined();

    const file = path.join(dir, 'again.safetensors');
    const s = await runCli(['export', tfjs, '--format', 'safetensors', '--out', file]);
    expect(s.code, s.stderr).toBe(0);
    // tfjs -> safetensors gives back the same tensors, name by name, bit for bit.
    const before = decodeSafetensors(readFileSync(path.join(imported, 'backbone.safetensors')));
    const after = decodeSafetensors(readFileSync(file));
    expect([...after.tensors.keys()].sort()).toEqual([...before.tensors.keys()].sort());
    for (const [name, entry] of before.tensors) {
      expect(after.tensors.get(name)?.shape, name).toEqual(entry.shape);
      expect(after.tensors.get(name)?.dtype, name).toBe(entry.dtype);
      expect(Buffer.from(after.tensors.get(name)?.bytes ?? []).equals(Buffer.from(entry.bytes)), name).toBe(true);
    }
  });

  it('import names a corrupt file, exit 1', async () => {
    const garbage = path.join(dir, 'garbage.safetensors');
    writeFileSync(garbage, 'hello world this is not safetensors');
    const r = await runCli(['import', garbage, '--out', path.join(dir, 'x')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`selfsup: ${garbage}: not a valid safetensors file: header length`);
  });

  it('import rejects --channels 2, exit 2', async () => {
    const r = await runCli(['import', weights, '--out', path.join(dir, 'x'), '--channels', '2']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('selfsup: Expected 1 or 3 for --channels but received "2" (string)');
  });

  it('export rejects an unknown format (exit 2) and names a missing source (exit 1)', async () => {
    const bad = await runCli(['export', weights, '--format', 'pt', '--out', path.join(dir, 'y')]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain(
      'selfsup: Expected "safetensors", "tfjs" or "onnx" for --format but received "pt" (string)',
    );
    const missing = path.join(dir, 'no-run');
    const gone = await runCli(['export', missing, '--format', 'tfjs', '--out', path.join(dir, 'y')]);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain(`selfsup: ${missing}: no such file or directory`);
  });
});
