import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBackbone } from '../../src/backbones/index.js';
import type { ImageSource, RawImage } from '../../src/data/types.js';
import { analyseEmbeddings } from '../../src/embed/analyse.js';
import { embedImages } from '../../src/embed/embed-images.js';
import { initEngine } from '../../src/engine/backend.js';
import { readEmbeddings } from '../../src/export/embeddings.js';
import { columnValues, readArrowTable } from '../../src/util/arrow.js';
import { createRng } from '../../src/util/rng.js';

/** 24 generated 20x20 grayscale images in two classes; image 5 repeats image 2; image 9 cannot be decoded. */
function generatedSource(): ImageSource {
  const rng = createRng('embed-source');
  const images: RawImage[] = [];
  for (let i = 0; i < 24; i++) {
    const data = new Uint8Array(400);
    const cls = i % 2;
    for (let p = 0; p < 400; p++) {
      const row = Math.floor(p / 20);
      const stripe = cls === 0 ? row % 4 < 2 : p % 4 < 2;
      data[p] = Math.min(255, (stripe ? 200 : 30) + rng.int(40));
    }
    images.push({ data, width: 20, height: 20, channels: 1 });
  }
  images[5] = images[2];
  return {
    size: 24,
    labels: Int32Array.from({ length: 24 }, (_, i) => (i === 23 ? -1 : i % 2)),
    classNames: ['rows', 'columns'],
    async load(index) {
      if (index === 9) throw new Error('truncated PNG');
      return images[index];
    },
    describe: (index) => `generated#${index}`,
  };
}

describe('embedImages + analyseEmbeddings', () => {
  let dir: string;
  beforeAll(() => {
    expect(initEngine().backend).toBe('tensorflow');
    dir = mkdtempSync(path.join(os.tmpdir(), 'selfsup-embed-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('embeds every readable image, skips a broken one by name, and writes duplicates, outliers and a map', async () => {
    const backbone = createBackbone('resnet18', { inputChannels: 1, stem: 'small', widthMultiplier: 0.125, seed: 1 });
    const before = tf.memory().numTensors;
    const progress: number[] = [];
    const rows = await embedImages(
      backbone,
      generatedSource(),
      { size: 16, channels: 1, mean: [0.5], std: [0.5] },
      { batchSize: 10, onProgress: (done) => progress.push(done) },
    );
    expect(tf.memory().numTensors).toBe(before);
    expect(progress).toEqual([10, 20, 24]);
    expect(rows.failures).toEqual([{ index: 9, path: 'generated#9', reason: 'truncated PNG' }]);
    expect(rows.indices).toHaveLength(23);
    expect(rows.dim).toBe(backbone.featureDim);
    expect(rows.vectors).toHaveLength(23 * backbone.featureDim);

    const out = path.join(dir, 'out');
    const summary = await analyseEmbeddings(rows, out, { duplicateThreshold: 0.9999, neighbors: 3, mapEpochs: 30 });
    backbone.dispose();
    expect(summary.images).toBe(23);
    const back = readEmbeddings(summary.files.embeddings);
    expect(Array.from(back.vectors)).toEqual(Array.from(rows.vectors));
    expect(back.labels![22]).toBe(-1);

    // The identical pair (2, 5) is listed first, with similarity 1.
    const duplicates = readArrowTable(summary.files.duplicates);
    expect(columnValues(duplicates, 'index_a')[0]).toBe(2);
    expect(columnValues(duplicates, 'index_b')[0]).toBe(5);
    expect(columnValues(duplicates, 'similarity')[0] as number).toBeCloseTo(1, 5);

    const outliers = readArrowTable(summary.files.outliers);
    expect(outliers.numRows).toBe(23);
    const scores = columnValues(outliers, 'mean_knn_similarity') as number[];
    for (let i = 1; i < scores.length; i++) expect(scores[i]).toBeGreaterThanOrEqual(scores[i - 1]);

    expect(existsSync(summary.files.map!)).toBe(true);
    const meta = await sharp(summary.files.map!).metadata();
    expect(meta.format).toBe('png');
    expect(meta.width).toBeGreaterThan(100);
    expect(readArrowTable(summary.files.mapCoordinates!).numRows).toBe(23);
  });
});
