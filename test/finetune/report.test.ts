import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initEngine } from '../../src/engine/backend.js';
import { Classifier } from '../../src/finetune/classifier.js';
import { evaluateProbabilities, writeEvaluationReport } from '../../src/finetune/evaluate.js';
import { loadClassifier, saveClassifier } from '../../src/finetune/model-io.js';
import { columnValues, readArrowTable } from '../../src/util/arrow.js';
import { createRng } from '../../src/util/rng.js';
import { CLASSES, INPUT, quadrantSet } from '../support/labeled-sets.js';
import { createTinyBackbone } from '../support/tiny-backbone.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'selfsup-finetune-report-'));

describe('evaluation report, model folder', () => {
  beforeAll(() => {
    expect(initEngine().backend).toBe('tensorflow');
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it('writes report.json, report.md, Arrow tables and PNGs with hand-checkable numbers', async () => {
    // 4 samples, 2 classes: predictions 0, 1, 1, 0 for labels 0, 1, 0, 1 -> accuracy 0.5.
    const probs = Float32Array.from([0.9, 0.1, 0.2, 0.8, 0.4, 0.6, 0.7, 0.3]);
    const labels = Int32Array.from([0, 1, 0, 1]);
    const e = evaluateProbabilities(probs, labels, ['cat', 'dog']);
    expect(e.metrics.accuracy).toBe(0.5);
    expect(Array.from(e.confusion)).toEqual([1, 1, 1, 1]);
    // Bins: 0.9 -> bin 13 (acc 1), 0.8 -> bin 11 (acc 1), 0.6 -> bin 8 (acc 0), 0.7 -> bin 10 (acc 0).
    // ECE = (0.1 + 0.2 + 0.6 + 0.7) / 4 = 0.4.
    expect(e.calibration.ece).toBeCloseTo(0.4, 6);
    const dir = path.join(tmp, 'report');
    await writeEvaluationReport(dir, e, { describe: (i) => `img${i}.png`, title: 'Test' });
    const json = JSON.parse(readFileSync(path.join(dir, 'report.json'), 'utf8'));
    expect(json.accuracy).toBe(0.5);
    expect(json.perClass[0].class).toBe('cat');
    expect(json.confusion).toEqual([
      [1, 1],
      [1, 1],
    ]);
    expect(readFileSync(path.join(dir, 'report.md'), 'utf8')).toContain('| cat | 0.500 | 0.500 | 0.500 | 2 |');
    const predictions = readArrowTable(path.join(dir, 'predictions.arrow'));
    expect(predictions.numRows).toBe(4);
    expect(columnValues(predictions, 'path')).toEqual(['img0.png', 'img1.png', 'img2.png', 'img3.png']);
    expect(columnValues(predictions, 'predicted_name')).toEqual(['cat', 'dog', 'dog', 'cat']);
    expect(Array.from(columnValues(predictions, 'probabilities')[2] as Float32Array)).toEqual([
      expect.closeTo(0.4, 6),
      expect.closeTo(0.6, 6),
    ]);
    const confusion = readArrowTable(path.join(dir, 'confusion.arrow'));
    expect(columnValues(confusion, 'count')).toEqual([1, 1, 1, 1]);
    for (const png of ['confusion.png', 'reliability.png']) {
      const meta = await sharp(path.join(dir, png)).metadata();
      expect(meta.format).toBe('png');
      expect(meta.width).toBeGreaterThan(100);
    }
  });

  it('a saved model folder loads back with the same predictions', async () => {
    const rng = createRng(9);
    const c = new Classifier(
      createTinyBackbone(1, rng.derive('b')),
      { input: INPUT, classNames: CLASSES, hidden: [6] },
      rng.derive('h'),
    );
    const set = quadrantSet(10, 3);
    const before = c.predictProbabilities(set);
    const dir = path.join(tmp, 'model');
    await saveClassifier(c, dir, { note: 'test' }, { exportBackbone: false });
    const { classifier, file } = await loadClassifier(dir, {
      createBackbone: () => createTinyBackbone(1, createRng('other')),
    });
    expect(file.info).toEqual({ note: 'test' });
    const after = classifier.predictProbabilities(set);
    for (let i = 0; i < before.length; i++) expect(after[i]).toBeCloseTo(before[i], 6);
    c.dispose();
    classifier.dispose();
    await expect(loadClassifier(tmp)).rejects.toThrow(/not a finetuned model folder/);
  });
});
