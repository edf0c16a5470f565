/**
 * FIFOs, devices and sockets named by a table, a manifest or a folder are
 * refused (by name, with the reason) before anything opens them, so nothing hangs.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labelTableDataset } from '../../src/data/datasets/label-table.js';
import { decodeImage } from '../../src/data/decode.js';
import { readSafetensors } from '../../src/export/safetensors.js';
import { readArrowTable } from '../../src/util/arrow.js';
import { writeClassFolders, writeTinyBackboneExport } from '../cli/fixtures.js';
import { ensureBuilt, runCli } from '../support/cli.js';

const FIFO_REASON = 'not a regular file (a FIFO (named pipe)); refusing to open it';

describe('special files', () => {
  let dir: string;
  let fifo: string;
  let table: string;
  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'selfsup-special-'));
    const images = await writeClassFolders(path.join(dir, 'images'), 4);
    fifo = path.join(dir, 'images', 'rows', 'pipe.png');
    execFileSync('mkfifo', [fifo]);
    table = path.join(dir, 'labels.csv');
    // 7 images and the FIFO: two batches of 4 visit every row.
    const rows = images.slice(1).map((file) => `${path.relative(dir, file)},${path.basename(path.dirname(file))}`);
    rows.splice(2, 0, `${path.relative(dir, fifo)},rows`);
    writeFileSync(table, `path,label\n${rows.join('\n')}\n`);
    await ensureBuilt();
  }, 180_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('decoding a FIFO or a device fails at once with the reason', async () => {
    await expect(decodeImage(fifo, 1)).rejects.toThrow(`${fifo}: unreadable: ${FIFO_REASON}`);
    await expect(decodeImage('/dev/zero', 3)).rejects.toThrow(
      '/dev/zero: unreadable: not a regular file (a character device); refusing to open it',
    );
    const source = labelTableDataset(table);
    await expect(source.load(2, 1)).rejects.toThrow(FIFO_REASON);
  });

  it('a table, weights file or Arrow file that is itself a FIFO is refused', () => {
    const pipeCsv = path.join(dir, 'table.csv');
    execFileSync('mkfifo', [pipeCsv]);
    expect(() => labelTableDataset(pipeCsv)).toThrow(`${pipeCsv}: cannot read the label table: ${FIFO_REASON}`);
    const pipeArrow = path.join(dir, 'table.arrow');
    execFileSync('mkfifo', [pipeArrow]);
    expect(() => readArrowTable(pipeArrow)).toThrow(`${pipeArrow}: cannot read the Arrow table: ${FIFO_REASON}`);
    expect(() => readSafetensors('/dev/zero')).toThrow(
      '/dev/zero: cannot read the safetensors file: not a regular file (a character device); refusing to open it',
    );
  });

  it('embed over a table listing a FIFO finishes and reports it as a failure', async () => {
    const model = await writeTinyBackboneExport(path.join(dir, 'backbone'));
    const r = await runCli(['embed', model, '--data', table, '--out', path.join(dir, 'embed'), '--json'], {
      timeoutMs: 90_000,
    });
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout);
    expect(result.images).toBe(7);
    expect(result.failures).toEqual([
      expect.objectContaining({ path: fifo, reason: `${fifo}: unreadable: ${FIFO_REASON}` }),
    ]);
  });

  it('pretrain over a table listing a FIFO finishes, skipping it with its reason', async () => {
    const recipe = path.join(dir, 'tiny.yaml');
    writeFileSync(
      recipe,
      [
        'name: tiny',
        'seed: 0',
        'task: {id: rotation, options: {mode: random-one}}',
        'backbone: {arch: resnet18, widthMultiplier: 0.125, stem: small}',
        'input: {size: 16, channels: 1}',
        'data: {batchSize: 4, workers: 0}',
        'train: {epochs: 1, maxStepsPerEpoch: 2}',
        '',
      ].join('\n'),
    );
    const r = await runCli(['pretrain', recipe, '--data', table, '--out', path.join(dir, 'runs'), '--run-id', 'fifo'], {
      timeoutMs: 90_000,
    });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr + r.stdout).toContain(
      `1 image(s) could not be loaded and were replaced: ${fifo} (${fifo}: unreadable: ${FIFO_REASON})`,
    );
  });
});
