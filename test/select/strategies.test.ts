import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initEngine } from '../../src/engine/backend.js';
import { nearestAmong, unitSpace } from '../../src/select/geometry.js';
import { uncertaintyScores } from '../../src/select/scores.js';
import { SELECTION_STRATEGIES, selectFromPool, sphericalKMeans } from '../../src/select/strategies.js';
import { runSelectionStudy, studyTable } from '../../src/select/study.js';
import { createRng } from '../../src/util/rng.js';

beforeAll(async () => {
  await initEngine({ quiet: true });
  expect(tf.getBackend()).toBe('tensorflow');
});

/**
 * `clusters` well-separated blobs in `dim` dimensions with the given sizes (the first
 * blobs large, the last ones rare); returns rows and each row's blob.
 */
function blobs(sizes: number[], dim: number, seed: number, spread = 0.05) {
  const rng = createRng(seed);
  const centres = sizes.map(() => Array.from({ length: dim }, () => rng.normal()));
  const count = sizes.reduce((a, b) => a + b, 0);
  const values = new Float32Array(count * dim);
  const blob = new Int32Array(count);
  let row = 0;
  sizes.forEach((size, c) => {
    for (let i = 0; i < size; i++, row++) {
      blob[row] = c;
      for (let d = 0; d < dim; d++) values[row * dim + d] = centres[c][d] + spread * rng.normal();
    }
  });
  return { embeddings: { values, count, dim }, blob };
}

/** Probabilities whose argmax is `label` with confidence `confidence` (rest spread evenly). */
function probabilitiesFor(label: Int32Array, numClasses: number, confidence: Float32Array) {
  const values = new Float32Array(label.length * numClasses);
  for (let i = 0; i < label.length; i++) {
    for (let c = 0; c < numClasses; c++) {
      values[i * numClasses + c] = c === label[i] ? confidence[i] : (1 - confidence[i]) / (numClasses - 1);
    }
  }
  return { values, count: label.length, numClasses };
}

describe('geometry', () => {
  it('nearestAmong in small tiles equals a plain loop over cosine similarities', () => {
    const { embeddings } = blobs([40, 30, 7], 6, 1, 0.5);
    const others = blobs([9, 4], 6, 2, 0.5).embeddings;
    const space = unitSpace(embeddings, others, false);
    const tiled = nearestAmong(space.pool, space.labeled as tf.Tensor2D, 16);
    const a = space.pool.arraySync();
    const b = (space.labeled as tf.Tensor2D).arraySync();
    space.dispose();
    for (let i = 0; i < a.length; i++) {
      let best = -Infinity;
      let where = -1;
      for (let j = 0; j < b.length; j++) {
        const dot = a[i].reduce((s, v, d) => s + v * b[j][d], 0);
        if (dot > best) {
          best = dot;
          where = j;
        }
      }
      expect(tiled.index[i]).toBe(where);
      expect(tiled.similarity[i]).toBeCloseTo(best, 5);
    }
  });
});

describe('uncertainty scores', () => {
  it('margin, entropy and least confidence follow their formulas', () => {
    const p = { values: Float32Array.from([0.7, 0.2, 0.1, 0.4, 0.4, 0.2]), count: 2, numClasses: 3 };
    const margin = uncertaintyScores(p, 'margin');
    expect(margin[0]).toBeCloseTo(1 - 0.5, 6);
    expect(margin[1]).toBeCloseTo(1, 6);
    const entropy = uncertaintyScores(p, 'entropy');
    expect(entropy[0]).toBeCloseTo(-(0.7 * Math.log(0.7) + 0.2 * Math.log(0.2) + 0.1 * Math.log(0.1)), 5);
    const least = uncertaintyScores(p, 'least-confidence');
    expect(least[0]).toBeCloseTo(0.3, 6);
    expect(least[1]).toBeCloseTo(0.6, 6);
  });
});

describe('selectFromPool', () => {
  it('diversity (k-center greedy) covers every blob, rare ones included, where random misses some', () => {
    const sizes = [300, 300, 300, 300, 300, 5, 5, 5];
    // Spread 0.4: blob members are similar but not near-duplicates of each other.
    const { embeddings, blob } = blobs(sizes, 32, 3, 0.25);
    const diverse = selectFromPool({ embeddings }, { budget: sizes.length, strategy: 'diversity', seed: 0 });
    expect(new Set(diverse.picks.map((p) => blob[p.row])).size).toBe(sizes.length);
    // Scores are the distance to the nearest earlier pick: non-increasing after the first.
    for (let i = 2; i < diverse.picks.length; i++) {
      expect(diverse.picks[i].score).toBeLessThanOrEqual(diverse.picks[i - 1].score + 1e-6);
    }
    const covered = [0, 1, 2].map(
      (seed) =>
        new Set(
          selectFromPool({ embeddings }, { budget: sizes.length, strategy: 'random', seed }).picks.map(
            (p) => blob[p.row],
          ),
        ).size,
    );
    expect(Math.max(...covered)).toBeLessThan(sizes.length);
  });

  it('diversity starts from the labeled set: no pick lands in a blob that already has labels', () => {
    const { embeddings, blob } = blobs([50, 50, 50, 50], 8, 4);
    const labeledRows = [0, 1, 50];
    const labeled = {
      values: Float32Array.from(labeledRows.flatMap((r) => Array.from(embeddings.values.subarray(r * 8, r * 8 + 8)))),
      count: labeledRows.length,
      dim: 8,
    };
    const result = selectFromPool({ embeddings, labeled, exclude: labeledRows }, { budget: 2, strategy: 'diversity' });
    expect(result.picks.map((p) => blob[p.row]).sort()).toEqual([2, 3]);
    // Each pick's nearest labeled image and distance are reported.
    for (let i = 0; i < result.picks.length; i++) {
      expect(result.nearestLabeled.row[i]).toBeGreaterThanOrEqual(0);
      expect(result.nearestLabeled.distance[i]).toBeGreaterThan(0.5);
    }
  });

  it('never picks a near-duplicate of a picked or labeled image, with any strategy', () => {
    const { embeddings } = blobs([20, 20, 20], 8, 5, 0.5);
    const dim = 8;
    const values = new Float32Array((embeddings.count + 20) * dim);
    values.set(embeddings.values);
    // Rows 60..79 are exact copies of rows 0..19.
    for (let i = 0; i < 20; i++) values.set(embeddings.values.subarray(i * dim, (i + 1) * dim), (60 + i) * dim);
    const pool = { values, count: embeddings.count + 20, dim };
    const labeled = { values: values.slice(0, dim), count: 1, dim }; // row 0 is labeled
    const rng = createRng(9);
    const label = Int32Array.from({ length: pool.count }, (_, i) => i % 3);
    const confidence = Float32Array.from({ length: pool.count }, () => 0.4 + 0.5 * rng.next());
    // Copies get the same probabilities as their originals so uncertainty orders them together.
    for (let i = 0; i < 20; i++) {
      label[60 + i] = label[i];
      confidence[60 + i] = confidence[i];
    }
    const probabilities = probabilitiesFor(label, 3, confidence);
    for (const strategy of SELECTION_STRATEGIES) {
      const result = selectFromPool(
        { embeddings: pool, labeled, probabilities, exclude: [0] },
        { budget: 60, strategy, seed: 1 },
      );
      const picked = new Set(result.picks.map((p) => p.row));
      for (let i = 0; i < 20; i++) expect(picked.has(i) && picked.has(60 + i), `${strategy} row ${i}`).toBe(false);
      expect(picked.has(60), strategy).toBe(false); // copy of the labeled row 0
      expect(picked.has(0), strategy).toBe(false); // excluded
      expect(result.picks.length, strategy).toBe(59); // 81 rows - 1 labeled - its copy - 20 copies
    }
  });

  it('typical takes the image nearest each cluster centre, largest clusters first', () => {
    const sizes = [80, 40, 20];
    const { embeddings, blob } = blobs(sizes, 16, 13, 0.3);
    const result = selectFromPool({ embeddings }, { budget: 3, strategy: 'typical', seed: 0 });
    expect(result.picks.map((p) => blob[p.row])).toEqual([0, 1, 2]);
    // Each pick is its blob's member closest (cosine, centred) to the blob's mean direction.
    const space = unitSpace(embeddings);
    const unit = space.pool.arraySync();
    space.dispose();
    for (const pick of result.picks) {
      const members = unit.map((row, i) => ({ row, i })).filter(({ i }) => blob[i] === blob[pick.row]);
      const centre = members[0].row.map((_, d) => members.reduce((s, m) => s + m.row[d], 0));
      const norm = Math.hypot(...centre);
      const cos = (row: number[]) => row.reduce((s, v, d) => s + (v * centre[d]) / norm, 0);
      const best = members.reduce((a, b) => (cos(b.row) > cos(a.row) ? b : a));
      expect(pick.row).toBe(best.i);
      expect(pick.score).toBeCloseTo(cos(unit[pick.row]), 4);
    }
  });

  it('uncertainty takes the least certain images first', () => {
    const { embeddings } = blobs([30, 30], 4, 6, 1);
    const rng = createRng(2);
    const label = Int32Array.from({ length: 60 }, () => rng.int(4));
    const confidence = Float32Array.from({ length: 60 }, () => 0.3 + 0.7 * rng.next());
    const probabilities = probabilitiesFor(label, 4, confidence);
    const result = selectFromPool(
      { embeddings, probabilities },
      { budget: 10, strategy: 'uncertainty', measure: 'least-confidence' },
    );
    const expected = Array.from({ length: 60 }, (_, i) => i)
      .sort((a, b) => confidence[a] - confidence[b])
      .slice(0, 10);
    expect(result.picks.map((p) => p.row)).toEqual(expected);
    expect(result.picks[0].score).toBeCloseTo(1 - confidence[expected[0]], 6);
  });

  it('hybrid spreads uncertain picks over clusters; uncertainty alone piles into one', () => {
    const { embeddings, blob } = blobs([100, 100, 100, 100, 100], 12, 7, 0.3);
    // Blob 0 is where the classifier is most uncertain.
    const label = new Int32Array(500);
    const confidence = Float32Array.from(blob, (b, i) => (b === 0 ? 0.3 + 0.001 * (i % 50) : 0.6 + 0.001 * (i % 50)));
    const probabilities = probabilitiesFor(label, 3, confidence);
    const hybrid = selectFromPool({ embeddings, probabilities }, { budget: 5, strategy: 'hybrid', seed: 0 });
    expect(new Set(hybrid.picks.map((p) => blob[p.row])).size).toBe(5);
    const uncertain = selectFromPool({ embeddings, probabilities }, { budget: 5, strategy: 'uncertainty' });
    expect(new Set(uncertain.picks.map((p) => blob[p.row]))).toEqual(new Set([0]));
  });

  it('balanced gives rare predicted classes as many picks as common ones, fewest-labeled classes first', () => {
    const count = 1000;
    // Predicted classes: 0 and 1 common, 2 rare (20 images).
    const label = Int32Array.from({ length: count }, (_, i) => (i < 20 ? 2 : i % 2));
    const rng = createRng(3);
    const confidence = Float32Array.from({ length: count }, () => 0.4 + 0.5 * rng.next());
    const probabilities = probabilitiesFor(label, 3, confidence);
    const { embeddings } = blobs([count], 16, 8, 1);
    const result = selectFromPool(
      { embeddings, probabilities, labeledClasses: Int32Array.from([0, 0, 1]) },
      { budget: 30, strategy: 'balanced' },
    );
    const perClass = [0, 0, 0];
    for (const p of result.picks) perClass[label[p.row]]++;
    // With labeled counts 2/1/0, the rare class is served first and totals even out at 11 each.
    expect(label[result.picks[0].row]).toBe(2);
    expect(perClass[0] + 2).toBe(11);
    expect(perClass[1] + 1).toBe(11);
    expect(perClass[2]).toBe(11);
  });

  it('random is reproducible for a seed and differs across seeds', () => {
    const { embeddings } = blobs([200], 8, 9, 1);
    const a = selectFromPool({ embeddings }, { budget: 20, strategy: 'random', seed: 4 }).picks.map((p) => p.row);
    const b = selectFromPool({ embeddings }, { budget: 20, strategy: 'random', seed: 4 }).picks.map((p) => p.row);
    const c = selectFromPool({ embeddings }, { budget: 20, strategy: 'random', seed: 5 }).picks.map((p) => p.row);
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
  });

  it('strategies that need a classifier say so', () => {
    const { embeddings } = blobs([10], 4, 1);
    expect(() => selectFromPool({ embeddings }, { budget: 2, strategy: 'hybrid' })).toThrow(
      'strategy "hybrid" needs a classifier\'s probabilities: give a finetuned model folder (selfsup finetune) as the model, or use "diversity" or "random"',
    );
    expect(() => selectFromPool({ embeddings }, { budget: 0, strategy: 'random' })).toThrow(
      'Expected an integer between 1 and 10000000 for budget but received 0 (number)',
    );
  });

  it('spherical k-means recovers separated blobs', () => {
    const { embeddings, blob } = blobs([40, 40, 40], 8, 10);
    const space = unitSpace(embeddings);
    const { assignment, similarity } = sphericalKMeans(space.pool, 3, 10, createRng(1));
    for (const value of similarity) expect(value).toBeGreaterThan(0.5);
    space.dispose();
    // Same blob <=> same cluster.
    for (let i = 0; i < 120; i += 7) {
      for (let j = 0; j < 120; j += 11) expect(assignment[i] === assignment[j]).toBe(blob[i] === blob[j]);
    }
  });

  it('leaves no tensors behind', () => {
    const { embeddings } = blobs([50, 50], 8, 11, 0.5);
    const label = Int32Array.from({ length: 100 }, (_, i) => i % 2);
    const probabilities = probabilitiesFor(label, 2, new Float32Array(100).fill(0.7));
    selectFromPool({ embeddings, probabilities }, { budget: 5, strategy: 'hybrid' });
    const before = tf.memory().numTensors;
    for (const strategy of SELECTION_STRATEGIES) selectFromPool({ embeddings, probabilities }, { budget: 5, strategy });
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('runSelectionStudy', () => {
  it('reveals perRound labels a round, records each strategy and seed, and learns separable classes', () => {
    const sizes = [60, 60, 60, 8];
    const { embeddings, blob } = blobs(sizes, 16, 12, 0.3);
    // The test set is the pool itself: this checks the protocol, not generalisation.
    const test = blobs(sizes, 16, 12, 0.3);
    const rows = runSelectionStudy(
      { vectors: embeddings.values, labels: blob, dim: 16 },
      { vectors: test.embeddings.values, labels: test.blob, dim: 16 },
      {
        strategies: ['random', 'diversity', 'balanced'],
        seeds: [0, 1],
        rounds: 3,
        perRound: 4,
        probeSteps: 100,
        numClasses: 4,
        rareClasses: [3],
      },
    );
    expect(rows).toHaveLength(3 * 2 * 3);
    for (const r of rows) {
      expect(r.labels).toBe(4 * r.round);
      expect(r.rareShare).toBeCloseTo(r.rarePicked / r.labels, 10);
    }
    // k-center picks one image per blob in round 1, the rare blob included, and then classifies perfectly.
    for (const r of rows.filter((x) => x.strategy === 'diversity' && x.round === 1)) {
      expect(r.classesCovered).toBe(4);
      expect(r.rarePicked).toBe(1);
      expect(r.accuracy).toBe(1);
    }
    expect(studyTable(rows, 'accuracy').split('\n')[0]).toBe('| labels | random | diversity | balanced |');
  });
});
