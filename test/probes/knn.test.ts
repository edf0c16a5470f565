import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initEngine } from '../../src/engine/index.js';
import { accuracyOf as accuracy, knnClassify } from '../../src/probes/knn.js';
import { embeddingSpread, isCollapsed } from '../../src/train/collapse.js';
import { knnSplit } from '../../src/train/monitor.js';
import { createRng } from '../../src/util/rng.js';
import { makeSource } from '../support/pretraining.js';

beforeAll(() => {
  expect(initEngine({ quiet: true }).backend).toBe('tensorflow');
});

/** Plain-loop weighted kNN: cosine similarity, top k, votes exp(sim / T), ties to the lower class. */
function referenceKnn(bank: number[][], labels: number[], queries: number[][], k: number, t: number): number[] {
  const unit = (v: number[]) => {
    const n = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
    return v.map((x) => x / n);
  };
  const b = bank.map(unit);
  const classes = Math.max(...labels) + 1;
  return queries.map((q0) => {
    const q = unit(q0);
    const sims = b.map((row, i) => ({ i, s: row.reduce((acc, x, j) => acc + x * q[j], 0) }));
    sims.sort((x, y) => y.s - x.s);
    const votes = new Array(classes).fill(0);
    for (const { i, s } of sims.slice(0, k)) votes[labels[i]] += Math.exp(s / t);
    return votes.indexOf(Math.max(...votes));
  });
}

describe('knnClassify', () => {
  it('matches a plain-loop weighted kNN', () => {
    const rng = createRng(4);
    const centers = [0, 1, 2].map(() => Array.from({ length: 6 }, () => rng.normal()));
    const sample = (c: number) => centers[c].map((x) => x + rng.normal() * 0.8);
    const labels = Array.from({ length: 60 }, (_, i) => i % 3);
    const bank = labels.map(sample);
    const queryLabels = Array.from({ length: 30 }, (_, i) => (i * 7) % 3);
    const queries = queryLabels.map(sample);
    for (const [k, t] of [
      [1, 0.1],
      [5, 0.07],
      [20, 0.5],
    ]) {
      const got = tf.tidy(() => knnClassify(tf.tensor2d(bank), Int32Array.from(labels), tf.tensor2d(queries), k, t));
      expect(Array.from(got)).toEqual(referenceKnn(bank, labels, queries, k, t));
    }
    const predictions = tf.tidy(() => knnClassify(tf.tensor2d(bank), Int32Array.from(labels), tf.tensor2d(queries), 5));
    expect(accuracy(predictions, Int32Array.from(queryLabels))).toBeGreaterThan(0.8);
  });

  it('rejects mismatched inputs with a clear message and leaks nothing', () => {
    const before = tf.memory().numTensors;
    const bank = tf.ones([4, 3]) as tf.Tensor2D;
    const query = tf.ones([2, 5]) as tf.Tensor2D;
    expect(() => knnClassify(bank, new Int32Array(4), query, 3)).toThrow(
      'knnClassify: feature sizes differ (train 3, query 5)',
    );
    expect(() => knnClassify(bank, new Int32Array(3), bank, 3)).toThrow(
      'knnClassify: 3 labels for 4 training features',
    );
    knnClassify(bank, new Int32Array(4), bank, 3);
    tf.dispose([bank, query]);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('knnSplit', () => {
  it('gives disjoint, seeded bank and queries, sharing a small set proportionally', () => {
    const source = makeSource(30);
    const a = knnSplit(source, 20, 10, 1);
    expect(a.bank.length).toBe(20);
    expect(a.queries.length).toBe(10);
    expect(new Set([...a.bank, ...a.queries]).size).toBe(30);
    expect(knnSplit(source, 20, 10, 1)).toEqual(a);
    const small = knnSplit(source, 1000, 500, 1);
    expect(small.queries.length).toBe(10);
    expect(small.bank.length).toBe(20);
  });
});

describe('collapse alarm (embedding spread)', () => {
  it('is ~0 for a collapsed representation and ~1/sqrt(D) for a spread one', () => {
    const d = 64;
    const rng = createRng(2);
    const spreadRows = Array.from({ length: 512 }, () => Array.from({ length: d }, () => rng.normal()));
    const collapsedRows = Array.from({ length: 512 }, () =>
      Array.from({ length: d }, (_, j) => 1 + j * 0.01 + rng.normal() * 1e-4),
    );
    const healthy = tf.tidy(() => embeddingSpread(tf.tensor2d(spreadRows)).dataSync()[0]);
    const collapsed = tf.tidy(() => embeddingSpread(tf.tensor2d(collapsedRows)).dataSync()[0]);
    expect(healthy).toBeGreaterThan(0.9 / Math.sqrt(d));
    expect(healthy).toBeLessThan(1.1 / Math.sqrt(d));
    expect(collapsed).toBeLessThan(0.01 / Math.sqrt(d));
    expect(isCollapsed(healthy, d, 0.1)).toBe(false);
    expect(isCollapsed(collapsed, d, 0.1)).toBe(true);
  });
});
