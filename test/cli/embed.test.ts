import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeIdx } from '../../src/data/datasets/idx.js';
import { initEngine } from '../../src/engine/backend.js';
import { readEmbeddings } from '../../src/export/embeddings.js';
import { readArrowTable } from '../../src/util/arrow.js';
import { ensureBuilt, runCli } from '../support/cli.js';
import { writeBrokenPng, writeClassFolders, writeTinyBackboneExport } from './fixtures.js';

describe('selfsup embed (subprocess)', () => {
  let dir: string;
  let images: string;
  let model: string;
  beforeAll(async () => {
    initEngine();
    dir = mkdtempSync(path.join(os.tmpdir(), 'selfsup-cli-embed-'));
    images = path.join(dir, 'images');
    await writeClassFolders(images, 6);
    writeBrokenPng(path.join(images, 'rows', 'broken.png'));
    // A run folder holding its export one level down, as pretrain leaves it.
    model = await writeTinyBackboneExport(path.join(dir, 'run', 'backbone'));
    await ensureBuilt();
  }, 180_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('writes embeddings, duplicates, outliers and a labelled map, and says where they are', async () => {
    const out = path.join(dir, 'out');
    const r = await runCli([
      'embed',
      path.join(dir, 'run'),
      '--data',
      images,
      '--class-folders',
      '--out',
      out,
      '--neighbors',
      '3',
      '--map-epochs',
      '20',
      '--json',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout);
    expect(result.images).toBe(12);
    expect(result.sourceImages).toBe(13);
    expect(result.failures).toHaveLength(1);
    expect(result.failures[0].path).toBe(path.join(images, 'rows', 'broken.png'));
    expect(result.modelFile).toBe(path.join(model, 'backbone.safetensors'));
    expect(result.labeled).toBe(true);
    const embeddings = readEmbeddings(path.join(out, 'embeddings.arrow'));
    expect(embeddings.indices).toHaveLength(12);
    expect(embeddings.classNames).toEqual(['columns', 'rows']);
    for (const file of [
      'near-duplicates.arrow',
      'outliers.arrow',
      'map.png',
      'map.arrow',
      'summary.json',
      'failures.arrow',
    ])
      expect(existsSync(path.join(out, file)), file).toBe(true);
    expect(readArrowTable(path.join(out, 'outliers.arrow')).numRows).toBe(12);
  });

  it('prints the output paths for humans, and plain progress lines on stderr', async () => {
    const out = path.join(dir, 'out-text');
    const r = await runCli(['embed', model, '--data', images, '--out', out, '--no-map']);
    expect(r.code, r.stderr).toBe(0);
    // Not a terminal: progress as plain lines on stderr, no escape codes.
    expect(r.stderr).toMatch(/^embed 13\/13 \(100%\)/m);
    expect(r.stderr).not.toContain(String.fromCharCode(27));
    expect(r.stdout).toContain(`embeddings       ${path.join(out, 'embeddings.arrow')}`);
    expect(r.stdout).toContain('skipped          1 unreadable image(s)');
    expect(existsSync(path.join(out, 'map.png'))).toBe(false);
  });

  it('takes an images,labels pair of IDX files with any names; a missing one is named, exit 1', async () => {
    const idx = path.join(dir, 'idx');
    mkdirSync(idx, { recursive: true });
    const imagesFile = path.join(idx, 'pool-pixels.idx3');
    const labelsFile = path.join(idx, 'pool-classes.idx1');
    writeFileSync(
      imagesFile,
      encodeIdx(
        [8, 16, 16],
        Uint8Array.from({ length: 8 * 16 * 16 }, (_, i) => (i * 37) % 256),
      ),
    );
    writeFileSync(labelsFile, encodeIdx([8], Uint8Array.from([0, 1, 0, 1, 0, 1, 0, 1])));
    const out = path.join(dir, 'out-idx');
    const r = await runCli(['embed', model, '--data', `${imagesFile},${labelsFile}`, '--out', out, '--neighbors', '3']);
    expect(r.code, r.stderr).toBe(0);
    const embeddings = readEmbeddings(path.join(out, 'embeddings.arrow'));
    expect(embeddings.indices).toHaveLength(8);
    expect(Array.from(embeddings.labels ?? [])).toEqual([0, 1, 0, 1, 0, 1, 0, 1]);
    const missingLabels = path.join(idx, 'nope.idx1');
    const missing = await runCli([
      'embed',
      model,
      '--data',
      `${imagesFile},${missingLabels}`,
      '--out',
      path.join(dir, 'y'),
    ]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(`selfsup: ${missingLabels}: does not exist (given as --data)`);
  });

  it('names a missing --data path, exit 1', async () => {
    const missing = path.join(dir, 'nope');
    const r = await runCli(['embed', model, '--data', missing, '--out', path.join(dir, 'x')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`selfsup: ${missing}: does not exist (given as --data)`);
  });

  it('names a folder without a backbone, exit 1', async () => {
    const r = await runCli(['embed', images, '--data', images, '--out', path.join(dir, 'x'), '--json']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      `selfsup: ${images}: no backbone found: looked for backbone.safetensors or model.json in the directory, backbone/`,
    );
    expect(JSON.parse(r.stdout).exitCode).toBe(1);
  });

  it('rejects a bad option value (exit 2) and a missing required option (exit 2)', async () => {
    const bad = await runCli(['embed', model, '--data', images, '--out', 'x', '--duplicate-threshold', '1.5']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain(
      `error: option '--duplicate-threshold <x>' argument '1.5' is invalid. Expected a number between -1 and 1 but received "1.5"`,
    );
    const missing = await runCli(['embed', model, '--out', 'x']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain(`error: required option '--data <path>' not specified`);
  });
});
