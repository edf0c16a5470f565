import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initEngine } from '../../src/engine/backend.js';
import { Classifier } from '../../src/finetune/classifier.js';
import { evaluateProbabilities, writeEvaluationReport } from '../../src/finetune/evaluate.js';
import { loadClassifier, saveClassifier } from '../../src/finetune/model-io.js';
import { augmentBatch } from '../../src/finetune/tensor-augment.js';
import { columnValues, readArrowTable } from '../../src/util/arrow.js';
import { createRng } from '../../src/util/rng.js';
import { CLASSES, INPUT, quadrantSet } from './synthetic.js';
import { createTinyBackbone } from './tiny-backbone.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'selfsup-finetune-report-'));

describe('evaluation report, model folder, tensor augmentation', () => {
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

  it('tensor augmentation: identity crop, flips, solarize, same seed same pixels, no leaks', () => {
    const set = quadrantSet(4, 5);
    const x = tf.tensor4d(set.pixels, [4, 12, 12, 1]);
    const before = tf.memory().numTensors;
    const same = tf.tidy(
      () =>
        tf
          .max(
            tf.abs(
              tf.sub(
                augmentBatch(x, [{ op: 'randomResizedCrop', size: 12, scale: [1, 1], ratio: [1, 1] }], createRng(1)),
                x,
              ),
            ),
          )
          .dataSync()[0],
    );
    expect(same).toBeLessThan(1e-5);
    const flipped = tf.tidy(
      () =>
        tf
          .max(tf.abs(tf.sub(augmentBatch(x, [{ op: 'horizontalFlip', p: 1 }], createRng(1)), tf.reverse(x, 2))))
          .dataSync()[0],
    );
    expect(flipped).toBe(0);
    // The threshold is on the 0-1 scale, as in the per-image pipeline (docs/data.md).
    const solar = tf.tidy(() => augmentBatch(x, [{ op: 'solarize', p: 1, threshold: 0.5 }], createRng(1)).dataSync());
    expect(set.pixels.some((v) => v >= 0.5) && set.pixels.some((v) => v < 0.5)).toBe(true);
    for (const [i, v] of set.pixels.entries()) expect(solar[i]).toBeCloseTo(v >= 0.5 ? 1 - v : v, 6);
    // Random erasing: each image gets one rectangle of the value, the rest is untouched.
    const erased = tf.tidy(() =>
      augmentBatch(x, [{ op: 'randomErasing', p: 1, scale: [0.1, 0.2], value: 0.75 }], createRng(2)).dataSync(),
    );
    for (let b = 0; b < 4; b++) {
      let filled = 0;
      for (let j = 0; j < 144; j++) {
        const i = b * 144 + j;
        if (erased[i] !== set.pixels[i]) {
          expect(erased[i]).toBeCloseTo(0.75, 6);
          filled++;
        }
      }
      expect(filled).toBeGreaterThan(5);
      expect(filled).toBeLessThanOrEqual(0.3 * 144);
    }
    const strong = [
      { op: 'randomResizedCrop' as const, size: 10, scale: [0.5, 1] as [number, number] },
      { op: 'colorJitter' as const, p: 0.8, brightness: 0.4, contrast: 0.4 },
      { op: 'gaussianBlur' as const, p: 0.5, sigma: [0.1, 1.5] as [number, number] },
      { op: 'normalize' as const, mean: [0.5], std: [0.25] },
    ];
    const a = tf.tidy(() => augmentBatch(x, strong, createRng(7)).dataSync());
    const b = tf.tidy(() => augmentBatch(x, strong, createRng(7)).dataSync());
    const c = tf.tidy(() => augmentBatch(x, strong, createRng(8)).dataSync());
    expect(a.length).toBe(4 * 10 * 10);
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(Array.from(a)).not.toEqual(Array.from(c));
    expect(tf.memory().numTensors).toBe(before);
    expect(() => tf.tidy(() => augmentBatch(x, [{ op: 'jigsaw', grid: 2, tileSize: 4 }], createRng(1)))).toThrow(
      /jigsaw/,
    );
    x.dispose();
    expect(existsSync(tmp)).toBe(true);
  });
});
