import {
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBackbone } from '../../src/backbones/registry.js';
import { parseCsv } from '../../src/data/datasets/label-table.js';
import { initEngine } from '../../src/engine/backend.js';
import { Classifier } from '../../src/finetune/classifier.js';
import { saveClassifier } from '../../src/finetune/model-io.js';
import { readArrowTable } from '../../src/util/arrow.js';
import { createRng } from '../../src/util/rng.js';
import { ensureBuilt, runCli } from '../support/cli.js';
import { writeBrokenPng, writeClassFolders, writeTinyBackboneExport } from './fixtures.js';

describe('selfsup select (subprocess)', () => {
  let dir: string;
  let pool: string;
  let labeled: string;
  let backbone: string;
  let classifier: string;
  beforeAll(async () => {
    initEngine();
    dir = mkdtempSync(path.join(os.tmpdir(), 'selfsup-cli-select-'));
    pool = path.join(dir, 'pool');
    await writeClassFolders(pool, 8);
    writeBrokenPng(path.join(pool, 'rows', 'broken.png'));
    // The labeled set: copies of two pool images (so their originals are near-duplicates).
    labeled = path.join(dir, 'labeled');
    for (const name of ['rows/rows-0.png', 'columns/columns-0.png']) {
      mkdirSync(path.join(labeled, path.dirname(name)), { recursive: true });
      copyFileSync(path.join(pool, name), path.join(labeled, name));
    }
    backbone = await writeTinyBackboneExport(path.join(dir, 'backbone'));
    const net = createBackbone('resnet18', { inputChannels: 1, stem: 'small', widthMultiplier: 0.125, seed: 5 });
    const model = new Classifier(
      net,
      { input: { size: 16, channels: 1, mean: [0.5], std: [0.25] }, classNames: ['columns', 'rows'], hidden: [] },
      createRng(1),
    );
    classifier = path.join(dir, 'classifier');
    await saveClassifier(model, classifier, {}, { exportBackbone: false });
    model.dispose();
    await ensureBuilt();
  }, 180_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('picks diverse images, never a labeled one or its copy, and writes the list, sheet and links', async () => {
    const out = path.join(dir, 'out-diversity');
    const r = await runCli([
      'select',
      backbone,
      '--data',
      pool,
      '--labeled',
      labeled,
      '--strategy',
      'diversity',
      '--budget',
      '5',
      '--out',
      out,
      '--export-picks',
      'link',
      '--json',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout);
    expect(result.strategy).toBe('diversity');
    expect(result.poolImages).toBe(17);
    expect(result.failures).toHaveLength(1);
    const rows = parseCsv(readFileSync(path.join(out, 'selection.csv'), 'utf8'));
    expect(rows[0]).toEqual([
      'rank',
      'path',
      'score',
      'predicted_class',
      'probability',
      'nearest_labeled',
      'nearest_labeled_distance',
    ]);
    expect(rows.slice(1).map((row) => row[0])).toEqual(['1', '2', '3', '4', '5']);
    const picked = rows.slice(1).map((row) => path.basename(row[1]));
    expect(picked).not.toContain('rows-0.png');
    expect(picked).not.toContain('columns-0.png');
    expect(new Set(picked).size).toBe(5);
    // Every pick names its nearest labeled image, at a positive cosine distance.
    for (const row of rows.slice(1)) {
      expect(row[5].startsWith(labeled)).toBe(true);
      expect(Number(row[6])).toBeGreaterThan(0);
    }
    const table = readArrowTable(path.join(out, 'selection.arrow'));
    expect(table.numRows).toBe(5);
    expect(table.getChild('path')?.toArray()).toEqual(rows.slice(1).map((row) => row[1]));
    const sheet = await sharp(path.join(out, 'contact-sheet.png')).metadata();
    expect(sheet.format).toBe('png');
    expect(sheet.width).toBe(5 * 100 + 4);
    const links = readdirSync(path.join(out, 'picks')).sort();
    expect(links).toHaveLength(5);
    expect(links[0].startsWith('1-')).toBe(true);
    expect(lstatSync(path.join(out, 'picks', links[0])).isSymbolicLink()).toBe(true);
  });

  it('with a finetuned classifier: uncertainty picks carry the predicted class and probability', async () => {
    const out = path.join(dir, 'out-uncertainty');
    const r = await runCli([
      'select',
      classifier,
      '--data',
      pool,
      '--strategy',
      'uncertainty',
      '--measure',
      'least-confidence',
      '--budget',
      '4',
      '--out',
      out,
      '--json',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const result = JSON.parse(r.stdout);
    expect(result.picks).toHaveLength(4);
    for (const p of result.picks) {
      expect(['columns', 'rows']).toContain(p.predictedClass);
      // Least confidence with two classes: score = 1 - p(top class), and p(top) >= 0.5.
      expect(p.score).toBeCloseTo(1 - p.probability, 5);
      expect(p.probability).toBeGreaterThanOrEqual(0.5);
    }
    const scores = result.picks.map((p: { score: number }) => p.score);
    expect([...scores].sort((a, b) => b - a)).toEqual(scores);
    expect(existsSync(path.join(out, 'picks'))).toBe(false);
  });

  it('a strategy that needs a classifier, given a backbone, is a usage error (exit 2) that says what to give', async () => {
    const r = await runCli([
      'select',
      backbone,
      '--data',
      pool,
      '--strategy',
      'hybrid',
      '--budget',
      '3',
      '--out',
      path.join(dir, 'out-bad'),
    ]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('strategy "hybrid" needs a classifier\'s probabilities');
  });
});
