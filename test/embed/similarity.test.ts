import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectToPlane } from '../../src/embed/projection.js';
import { rankOutliers, scanSimilarities } from '../../src/embed/similarity.js';
import { initEngine } from '../../src/engine/backend.js';
import { readEmbeddings, writeEmbeddings } from '../../src/export/embeddings.js';
import { createRng } from '../../src/util/rng.js';

/** Random vectors with a few planted near-copies and one far-away point. */
function plantedVectors(count: number, dim: number, seed: number) {
  const rng = createRng(seed);
  const v = new Float32Array(count * dim);
  for (let i = 0; i < v.length; i++) v[i] = rng.normal();
  // Rows 1 and 7 are near-copies of row 0; row 12 copies row 5.
  for (const [copy, source] of [
    [1, 0],
    [7, 0],
    [12, 5],
  ]) {
    for (let d = 0; d < dim; d++) v[copy * dim + d] = v[source * dim + d] + 0.001 * rng.normal();
  }
  return v;
}

/** Plain-loop cosine similarity, the reference. */
function cosine(v: Float32Array, dim: number, i: number, j: number): number {
  let dot = 0;
  let ni = 0;
  let nj = 0;
  for (let d = 0; d < dim; d++) {
    dot += v[i * dim + d] * v[j * dim + d];
    ni += v[i * dim + d] ** 2;
    nj += v[j * dim + d] ** 2;
  }
  return dot / Math.sqrt(ni * nj);
}

describe('similarity scan', () => {
  let dir: string;
  beforeAll(() => {
    expect(initEngine().backend).toBe('tensorflow');
    dir = mkdtempSync(path.join(os.tmpdir(), 'selfsup-embed-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('finds the same pairs and neighbours as a plain double loop, for any block size', async () => {
    const count = 37;
    const dim = 16;
    const v = plantedVectors(count, dim, 1);
    const threshold = 0.5;
    const expectedPairs: string[] = [];
    for (let i = 0; i < count; i++)
      for (let j = i + 1; j < count; j++) if (cosine(v, dim, i, j) >= threshold) expectedPairs.push(`${i}-${j}`);
    for (const blockSize of [5, 16, 64]) {
      const r = await scanSimilarities(v, count, dim, {
        neighbors: 4,
        duplicateThreshold: threshold,
        blockSize,
        center: false,
      });
      expect(r.pairs.map((p) => `${p.a}-${p.b}`).sort()).toEqual([...expectedPairs].sort());
      for (const p of r.pairs) expect(p.similarity).toBeCloseTo(cosine(v, dim, p.a, p.b), 4);
      for (let k = 1; k < r.pairs.length; k++)
        expect(r.pairs[k - 1].similarity).toBeGreaterThanOrEqual(r.pairs[k].similarity);
      for (const i of [0, 5, 36]) {
        const others = Array.from({ length: count }, (_, j) => j).filter((j) => j !== i);
        others.sort((x, y) => cosine(v, dim, i, y) - cosine(v, dim, i, x));
        expect(Array.from(r.knnIndices.subarray(i * 4, i * 4 + 4))).toEqual(others.slice(0, 4));
      }
    }
  });

  it('centres the embeddings first by default: the same as the plain loop on mean-subtracted rows', async () => {
    const count = 30;
    const dim = 8;
    // All-positive rows (like pooled ReLU features): raw cosines crowd near 1.
    const v = plantedVectors(count, dim, 6).map((x) => Math.abs(x) + 2);
    const mean = new Float64Array(dim);
    for (let i = 0; i < count; i++) for (let d = 0; d < dim; d++) mean[d] += v[i * dim + d] / count;
    const centred = v.map((x, i) => x - mean[i % dim]);
    const raw = await scanSimilarities(v, count, dim, { neighbors: 3, duplicateThreshold: 0.9, center: false });
    const r = await scanSimilarities(v, count, dim, { neighbors: 3, duplicateThreshold: 0.9 });
    expect(raw.pairs.length).toBeGreaterThan(100);
    const expected: string[] = [];
    for (let i = 0; i < count; i++)
      for (let j = i + 1; j < count; j++) if (cosine(centred, dim, i, j) >= 0.9) expected.push(`${i}-${j}`);
    expect(r.pairs.map((p) => `${p.a}-${p.b}`).sort()).toEqual(expected.sort());
    expect(expected).toEqual(expect.arrayContaining(['0-1', '0-7', '1-7', '5-12']));
    for (const p of r.pairs) expect(p.similarity).toBeCloseTo(cosine(centred, dim, p.a, p.b), 4);
  });

  it('lists planted near-duplicates and leaks no tensors', async () => {
    const v = plantedVectors(40, 8, 2);
    const before = tf.memory().numTensors;
    const r = await scanSimilarities(v, 40, 8, { neighbors: 3, duplicateThreshold: 0.999 });
    expect(tf.memory().numTensors).toBe(before);
    const pairs = r.pairs.map((p) => `${p.a}-${p.b}`);
    expect(pairs.sort()).toEqual(['0-1', '0-7', '1-7', '5-12']);
  });

  it('ranks a point far from a cluster as the top outlier', async () => {
    const count = 40;
    const dim = 8;
    const v = plantedVectors(count, dim, 5);
    // Rows 0..38 lie around +e0, row 39 on -e0.
    for (let i = 0; i < count; i++)
      for (let d = 0; d < dim; d++) v[i * dim + d] = (d === 0 ? (i === 39 ? -5 : 5) : 0) + 0.5 * v[i * dim + d];
    const r = await scanSimilarities(v, count, dim, { neighbors: 5 });
    const order = rankOutliers(r.meanKnnSimilarity);
    expect(order[0]).toBe(39);
    expect(r.meanKnnSimilarity[39]).toBeLessThan(r.meanKnnSimilarity[order[1]]);
    // Uncentred, the isolated point points away from everything else.
    const raw = await scanSimilarities(v, count, dim, { neighbors: 5, center: false });
    expect(rankOutliers(raw.meanKnnSimilarity)[0]).toBe(39);
    expect(raw.meanKnnSimilarity[39]).toBeLessThan(0);
  });

  it('cuts the pair list at maxPairs, most similar first', async () => {
    const v = plantedVectors(20, 4, 3);
    const r = await scanSimilarities(v, 20, 4, { duplicateThreshold: -1, maxPairs: 5 });
    expect(r.pairs).toHaveLength(5);
    expect(r.pairsTruncated).toBe(true);
  });

  it('rejects a bad threshold naming the option', async () => {
    await expect(scanSimilarities(new Float32Array(8), 4, 2, { duplicateThreshold: 2 })).rejects.toThrow(
      'Expected a number between -1 and 1 for duplicateThreshold but received 2 (number)',
    );
  });

  it('makes the same 2-D map for the same seed and a different one for another seed', async () => {
    const v = plantedVectors(30, 6, 4);
    const r = await scanSimilarities(v, 30, 6, { neighbors: 5 });
    const a = projectToPlane(r, { seed: 7, epochs: 50 });
    const b = projectToPlane(r, { seed: 7, epochs: 50 });
    const c = projectToPlane(r, { seed: 8, epochs: 50 });
    expect(a).toHaveLength(60);
    expect(Array.from(a).every(Number.isFinite)).toBe(true);
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(Array.from(a)).not.toEqual(Array.from(c));
    // The map keeps neighbours together: each planted near-copy lies closer to its original
    // than 90% of all pairs do (a random layout would put it anywhere).
    for (const map of [a, c]) {
      const distance = (i: number, j: number) => Math.hypot(map[2 * i] - map[2 * j], map[2 * i + 1] - map[2 * j + 1]);
      const all: number[] = [];
      for (let i = 0; i < 30; i++) for (let j = i + 1; j < 30; j++) all.push(distance(i, j));
      all.sort((x, y) => x - y);
      const tenthPercentile = all[Math.floor(all.length * 0.1)];
      for (const [copy, original] of [
        [1, 0],
        [7, 0],
        [12, 5],
      ]) {
        expect(distance(copy, original)).toBeLessThan(tenthPercentile);
      }
    }
  });

  it('writes embeddings as Arrow with a FixedSizeList vector column and reads them back', async () => {
    const file = path.join(dir, 'e.arrow');
    const vectors = Float32Array.from({ length: 12 }, (_, i) => i / 3);
    await writeEmbeddings(
      file,
      {
        indices: Int32Array.from([0, 1, 2]),
        paths: ['a.png', 'b.png', 'c.png'],
        labels: Int32Array.from([1, -1, 0]),
        classNames: ['cat', 'dog'],
        vectors,
        dim: 4,
      },
      { backbone: 'test' },
    );
    const back = readEmbeddings(file);
    expect(back.dim).toBe(4);
    expect(Array.from(back.vectors)).toEqual(Array.from(vectors));
    expect(back.paths).toEqual(['a.png', 'b.png', 'c.png']);
    expect(Array.from(back.labels!)).toEqual([1, -1, 0]);
    expect(back.classNames).toEqual(['cat', 'dog']);
    expect(back.metadata.backbone).toBe('test');
  });
});
