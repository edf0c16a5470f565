/** The shipped Fashion-MNIST sample (data/fashion-mnist-demo) through the data layer. */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SIMCLR_PIPELINE } from '../../src/data/augment/presets.js';
import { classFolderDataset } from '../../src/data/datasets/folder.js';
import { FASHION_MNIST_CLASSES, idxDataset } from '../../src/data/datasets/idx.js';
import { sourceClassCounts, splitDataset } from '../../src/data/datasets/split.js';
import { createLoader } from '../../src/data/loader.js';
import { readScanManifest } from '../../src/data/manifest.js';
import { scanFolder } from '../../src/data/scan.js';
import { tempDir } from './fixtures.js';

const demo = path.resolve(import.meta.dirname, '../../data/fashion-mnist-demo');

describe('Fashion-MNIST demo sample', () => {
  it('reads the gzipped IDX files with class names and splits them stratified', async () => {
    const source = idxDataset(
      path.join(demo, 'idx/train-images-idx3-ubyte.gz'),
      path.join(demo, 'idx/train-labels-idx1-ubyte.gz'),
      FASHION_MNIST_CLASSES,
    );
    expect(source.size).toBe(1000);
    expect([source.height, source.width]).toEqual([28, 28]);
    const counts = sourceClassCounts(source);
    expect(Object.keys(counts)).toEqual(FASHION_MNIST_CLASSES);
    expect(Object.values(counts).reduce((a, b) => a + b, 0)).toBe(1000);
    const split = splitDataset(source, { valFraction: 0.2, seed: 0 });
    const valCounts = sourceClassCounts(source, split.val);
    for (const name of FASHION_MNIST_CLASSES) expect(valCounts[name]).toBe(Math.round(counts[name] * 0.2));
    const loader = createLoader(source, {
      batchSize: 32,
      views: [SIMCLR_PIPELINE(28, 1), SIMCLR_PIPELINE(28, 1)],
      channels: 1,
      seed: 0,
      epoch: 0,
      workers: 0,
      subset: split.train,
    });
    expect(loader.batchCount).toBe(25);
    const first = await loader[Symbol.asyncIterator]().next();
    expect(first.value!.views[0].shape).toEqual([32, 28, 28, 1]);
  });

  it('scans the unlabeled part with its two broken files recorded', async () => {
    const out = path.join(tempDir(), 'part-0.arrow');
    const summary = await scanFolder(path.join(demo, 'unlabeled/part-0'), { out });
    expect(summary.files).toBe(502);
    expect(summary.bad).toBe(2);
    const m = readScanManifest(out);
    expect(m.error[m.path.indexOf('broken-empty.png')]).toBe('empty file (0 bytes)');
    expect(m.error[m.path.indexOf('broken-truncated.png')]).toMatch(/^truncated|^corrupt/);
    const ok = m.status.map((s, i) => (s === 'ok' ? i : -1)).filter((i) => i >= 0);
    expect(ok.every((i) => m.width[i] === 28 && m.height[i] === 28 && m.format[i] === 'png')).toBe(true);
  });

  it('lists the labeled class folders with the ten classes', async () => {
    const source = await classFolderDataset(path.join(demo, 'labeled'));
    expect(source.classNames).toHaveLength(10);
    expect(source.size).toBe(500);
    expect(Object.values(sourceClassCounts(source))).toEqual(Array(10).fill(50));
  });
});
