import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SIMCLR_PIPELINE } from '../../src/data/augment/presets.js';
import { classFolderDataset } from '../../src/data/datasets/folder.js';
import { IdxSource } from '../../src/data/datasets/idx.js';
import { createLoader, type DataLoaderOptions, defaultDecodeSize } from '../../src/data/loader.js';
import type { Batch, ImageSource } from '../../src/data/types.js';
import { setAugmentWorkerUrl, shutdownAugmentPool } from '../../src/data/worker-pool.js';
import { compiledWorkerUrl } from './compiled-worker.js';
import { cardSharp, tempDir, write } from './fixtures.js';

/** 24 small grayscale images with labels 0..2 (in memory, IDX-style). */
function memorySource(): IdxSource {
  const n = 24;
  const data = new Uint8Array(n * 12 * 12);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31 + (i >> 7)) % 256;
  const labels = Uint8Array.from({ length: n }, (_, i) => i % 3);
  return new IdxSource('memory.idx', { shape: [n, 12, 12], data }, { shape: [n], data: labels });
}

async function collect(source: ImageSource, options: DataLoaderOptions): Promise<Batch[]> {
  const batches: Batch[] = [];
  for await (const batch of createLoader(source, options)) batches.push(batch);
  return batches;
}

const base = (overrides: Partial<DataLoaderOptions> = {}): DataLoaderOptions => ({
  batchSize: 5,
  views: [SIMCLR_PIPELINE(8, 3), SIMCLR_PIPELINE(8, 3)],
  channels: 3,
  seed: 7,
  epoch: 0,
  workers: 0,
  ...overrides,
});

describe('createLoader', () => {
  afterAll(() => shutdownAugmentPool());

  it('yields every image once per epoch in [B, H, W, C] views with labels', async () => {
    const source = memorySource();
    const batches = await collect(source, base());
    expect(batches.map((b) => b.indices.length)).toEqual([5, 5, 5, 5, 4]);
    const seen = batches.flatMap((b) => [...b.indices]).sort((a, b) => a - b);
    expect(seen).toEqual(Array.from({ length: 24 }, (_, i) => i));
    expect(batches[0].views).toHaveLength(2);
    expect(batches[0].views[0].shape).toEqual([5, 8, 8, 3]);
    expect(batches[0].views[0].data.length).toBe(5 * 8 * 8 * 3);
    expect([...batches[0].labels!]).toEqual([...batches[0].indices].map((i) => i % 3));
    // The two views of an image differ (independent streams).
    expect(batches[0].views[0].data).not.toEqual(batches[0].views[1].data);
    const dropped = await collect(source, base({ dropLast: true }));
    expect(dropped).toHaveLength(4);
  });

  it('same seed -> identical batches; different seed or epoch -> different', async () => {
    const source = memorySource();
    const a = await collect(source, base());
    const b = await collect(source, base({ prefetch: 5 }));
    expect(b.map((x) => [...x.indices])).toEqual(a.map((x) => [...x.indices]));
    b.forEach((batch, i) => {
      expect(batch.views[0].data).toEqual(a[i].views[0].data);
      expect(batch.views[1].data).toEqual(a[i].views[1].data);
    });
    const otherSeed = await collect(source, base({ seed: 8 }));
    expect(otherSeed.map((x) => [...x.indices])).not.toEqual(a.map((x) => [...x.indices]));
    const otherEpoch = await collect(source, base({ epoch: 1 }));
    expect(otherEpoch[0].views[0].data).not.toEqual(a[0].views[0].data);
    const ordered = await collect(source, base({ shuffle: false }));
    expect([...ordered[0].indices]).toEqual([0, 1, 2, 3, 4]);
  });

  it('stacks jigsaw views as [B, T, h, w, C]', async () => {
    const batches = await collect(
      memorySource(),
      base({ channels: 1, views: [[{ op: 'jigsaw', grid: 2, tileSize: 5, gap: 1 }]], batchSize: 4 }),
    );
    expect(batches[0].views[0].shape).toEqual([4, 4, 5, 5, 1]);
    expect(batches[0].views[0].data.length).toBe(4 * 4 * 5 * 5);
  });

  it('stops after close()', async () => {
    const loader = createLoader(memorySource(), base());
    let seen = 0;
    for await (const _batch of loader) {
      seen++;
      loader.close();
    }
    expect(seen).toBe(1);
  });

  it('resumes at startBatch with the same batches', async () => {
    const source = memorySource();
    const full = await collect(source, base());
    const resumed = await collect(source, base({ startBatch: 2 }));
    expect(resumed).toHaveLength(3);
    expect(resumed[0].indices).toEqual(full[2].indices);
    expect(resumed[0].views[1].data).toEqual(full[2].views[1].data);
  });

  it('gives the same pixels on worker threads as in-process, and reports waiting', async () => {
    setAugmentWorkerUrl(compiledWorkerUrl());
    try {
      const source = memorySource();
      const inProcess = await collect(source, base());
      const loader = createLoader(source, base({ workers: 2, prefetch: 3 }));
      const threaded: Batch[] = [];
      const started = performance.now();
      for await (const batch of loader) threaded.push(batch);
      const elapsed = performance.now() - started;
      expect(loader.stats().workers).toBe(2);
      expect(loader.stats().batches).toBe(5);
      expect(loader.stats().images).toBe(24);
      // The consumer cannot have waited longer than the whole loop took.
      expect(loader.stats().waitMs).toBeGreaterThanOrEqual(0);
      expect(loader.stats().waitMs).toBeLessThanOrEqual(elapsed + 1);
      expect(loader.stats().augmentMs).toBeGreaterThan(0);
      threaded.forEach((batch, i) => {
        expect(batch.indices).toEqual(inProcess[i].indices);
        expect(batch.views[0].data).toEqual(inProcess[i].views[0].data);
        expect(batch.views[1].data).toEqual(inProcess[i].views[1].data);
      });
    } finally {
      setAugmentWorkerUrl(null);
    }
  });

  it('caches decoded, resized images across epochs', async () => {
    const dir = tempDir();
    for (let i = 0; i < 6; i++) {
      write(path.join(dir, i % 2 ? 'cats' : 'dogs', `${i}.png`), await cardSharp(40, 30, i).png().toBuffer());
    }
    const source = await classFolderDataset(dir);
    const options = base({ cacheSize: 16, batchSize: 3 });
    const first = createLoader(source, options);
    const epoch0: Batch[] = [];
    for await (const b of first) epoch0.push(b);
    expect(first.stats().cacheHits).toBe(0);
    const second = createLoader(source, options);
    const again: Batch[] = [];
    for await (const b of second) again.push(b);
    expect(second.stats().cacheHits).toBe(6);
    again.forEach((b, i) => {
      expect(b.views[0].data).toEqual(epoch0[i].views[0].data);
    });
  });

  it('decodeSize shrinks large images on load before augmentation', async () => {
    const dir = tempDir();
    write(path.join(dir, 'c', 'big.jpg'), await cardSharp(200, 100).jpeg().toBuffer());
    const source = await classFolderDataset(dir);
    const spec = [
      { op: 'resize' as const, size: 40 },
      { op: 'centerCrop' as const, size: 40 },
    ];
    const shrunk = await collect(source, base({ views: [spec], decodeSize: 50, batchSize: 1 }));
    const full = await collect(source, base({ views: [spec], decodeSize: 0, batchSize: 1 }));
    // The default (4 x 40 < 256 -> 256) keeps this 200x100 image at full size.
    const byDefault = await collect(source, base({ views: [spec], batchSize: 1 }));
    expect(byDefault[0].views[0].data).toEqual(full[0].views[0].data);
    expect(defaultDecodeSize([spec, SIMCLR_PIPELINE(96)])).toBe(384);
    expect(shrunk[0].views[0].shape).toEqual([1, 40, 40, 3]);
    // Both are the same scene at 40 px; decoding at 50 px first changes pixels only slightly.
    let diff = 0;
    for (let i = 0; i < full[0].views[0].data.length; i++) {
      diff += Math.abs(full[0].views[0].data[i] - shrunk[0].views[0].data[i]);
    }
    expect(diff / full[0].views[0].data.length).toBeLessThan(0.05);
    expect(shrunk[0].views[0].data).not.toEqual(full[0].views[0].data);
  });

  it('replaces an image that fails to load by the next good one, and reports it', async () => {
    const dir = tempDir();
    for (let i = 0; i < 4; i++) write(path.join(dir, 'a', `${i}.png`), await cardSharp(20, 20, i).png().toBuffer());
    write(path.join(dir, 'a', '2.png'), 'not a png');
    const source = await classFolderDataset(dir);
    const reported: string[] = [];
    const loader = createLoader(
      source,
      base({ batchSize: 4, shuffle: false, onBadImage: (b) => reported.push(b.reason) }),
    );
    const batches: Batch[] = [];
    for await (const b of loader) batches.push(b);
    expect([...batches[0].indices]).toEqual([0, 1, 3, 3]);
    expect(reported).toHaveLength(1);
    expect(reported[0]).toMatch(/2\.png: not an image/);
    expect(loader.stats().bad[0].name).toBe(path.join(dir, 'a', '2.png'));
  });

  it('rejects bad options naming the key', () => {
    const source = memorySource();
    expect(() => createLoader(source, base({ batchSize: 0 }))).toThrow(
      'Expected an integer between 1 and 1048576 for loader.batchSize but received 0 (number)',
    );
    expect(() => createLoader(source, base({ views: [[{ op: 'resize', size: 4 }]] }))).toThrow(
      'views[0]: output size is not fixed',
    );
    expect(() => createLoader(source, base({ subset: Int32Array.from([0, 99]) }))).toThrow(
      'Expected indices in 0..23 for loader.subset but received 99 (number)',
    );
  });
});

describe('loader with a labelled folder', () => {
  let dir: string;
  beforeAll(async () => {
    dir = tempDir();
    for (let i = 0; i < 4; i++) write(path.join(dir, 'x', `${i}.jpg`), await cardSharp(30, 20, i).jpeg().toBuffer());
  });

  it('decodes files to the requested channels', async () => {
    const source = await classFolderDataset(dir);
    const batches = await collect(source, base({ channels: 1, views: [SIMCLR_PIPELINE(8, 1)], batchSize: 4 }));
    expect(batches[0].views[0].shape).toEqual([4, 8, 8, 1]);
  });
});
