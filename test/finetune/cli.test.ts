import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, runCli } from '../support/cli.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'selfsup-finetune-cli-'));

describe('selfsup finetune / eval / budget (CLI)', () => {
  beforeAll(async () => {
    await ensureBuilt();
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it('--help shows examples', async () => {
    const r = await runCli(['finetune', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Examples:');
    expect(r.stdout).toContain('$ selfsup finetune recipes/finetune-linear-probe.yaml');
  });

  it('a bad recipe stops before any work with exit 2 and names the key', async () => {
    const recipe = path.join(tmp, 'bad.yaml');
    writeFileSync(recipe, 'loss:\n  type: hinge\n');
    const r = await runCli(['finetune', recipe, '--backbone', tmp, '--labels', tmp, '--out', path.join(tmp, 'out')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      'recipe.loss.type: Expected one of "cross-entropy", "focal" but received "hinge" (string)',
    );
  });

  it('usage errors: missing --labels, bad --per-class list', async () => {
    const recipe = path.join(tmp, 'ok.yaml');
    writeFileSync(recipe, 'seed: 1\n');
    const missing = await runCli(['finetune', recipe, '--backbone', tmp, '--out', tmp]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("required option '--labels <path>' not specified");
    const list = await runCli([
      'budget',
      recipe,
      '--backbone',
      tmp,
      '--labels',
      tmp,
      '--out',
      tmp,
      '--per-class',
      '10,x',
    ]);
    expect(list.code).toBe(2);
    expect(list.stderr).toContain(
      'Expected a comma-separated list of integers >= 1 for --per-class but received "10,x"',
    );
  });
});
