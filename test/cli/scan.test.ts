import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readArrowTable } from '../../src/util/arrow.js';
import { ensureBuilt, runCli } from '../support/cli.js';
import { writeBrokenPng, writeClassFolders } from './fixtures.js';

describe('selfsup scan (subprocess)', () => {
  let dir: string;
  let images: string;
  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'selfsup-cli-scan-'));
    images = path.join(dir, 'images');
    await writeClassFolders(images, 2);
    writeBrokenPng(path.join(images, 'columns', 'broken.png'));
    await ensureBuilt();
  }, 180_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('writes a manifest with ok and bad rows, then reuses rows on a rescan', async () => {
    const manifest = path.join(dir, 'manifest.arrow');
    const first = await runCli(['scan', images, '--out', manifest, '--json']);
    expect(first.code, first.stderr).toBe(0);
    const summary = JSON.parse(first.stdout);
    expect(summary).toMatchObject({ files: 5, ok: 4, bad: 1, opened: 5, reused: 0 });
    expect(existsSync(manifest)).toBe(true);
    expect(readArrowTable(manifest).numRows).toBe(5);
    const again = await runCli(['scan', images, '--out', manifest, '--json']);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ files: 5, opened: 0, reused: 5 });
  });

  it('names a folder that does not exist, exit 1', async () => {
    const missing = path.join(dir, 'missing');
    const r = await runCli(['scan', missing, '--out', path.join(dir, 'm.arrow')]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe(`selfsup: ${missing}: does not exist`);
  });

  it('rejects a bad --concurrency, exit 2', async () => {
    const r = await runCli(['scan', images, '--concurrency', '0']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      'selfsup: Expected an integer between 1 and 256 for --concurrency but received 0 (number)',
    );
  });
});
