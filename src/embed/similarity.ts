/**
 * Cosine-similarity search over a set of embeddings (mean-centred by default),
 * in blocks of rows so that memory stays at [blockSize, N] floats: the k nearest neighbours of every row,
 * the pairs above a similarity threshold (near-duplicates), and an outlier score
 * (mean similarity to the k nearest neighbours; low = unlike anything else).
 */
import * as tf from '@tensorflow/tfjs';
import { topKBlock, unitRows } from '../probes/cosine-search.js';
import { assertInteger, assertNumber } from '../util/errors.js';

export interface SimilarityOptions {
  /** Neighbours per row (excluding the row itself), 1..N-1. Default 10. */
  neighbors?: number;
  /** Cosine similarity at or above which two rows are a near-duplicate pair, in [-1, 1]. Default 0.98. */
  duplicateThreshold?: number;
  /** Rows per matrix-product block; memory is blockSize x N floats. Default 512. */
  blockSize?: number;
  /** Keep at most this many pairs (the most similar). Default 100000. */
  maxPairs?: number;
  /**
   * Subtract the mean embedding before comparing (default true). Pooled ReLU
   * features are all non-negative, so their raw cosine similarities crowd near 1
   * (median ~0.9 for a small pretrained ResNet); centred, unrelated images score
   * near 0 and only true look-alikes score near 1. Exact duplicates score 1 either way.
   */
  center?: boolean;
}

export interface NearDuplicatePair {
  /** Row indices, a < b. */
  a: number;
  b: number;
  similarity: number;
}

export interface SimilarityResult {
  count: number;
  /** k actually used (min(neighbors, N - 1)). */
  neighbors: number;
  /** [N, k] row-major: neighbour row indices, most similar first. */
  knnIndices: Int32Array;
  /** [N, k] row-major: their cosine similarities. */
  knnSimilarities: Float32Array;
  /** [N]: mean of each row's k neighbour similarities. */
  meanKnnSimilarity: Float32Array;
  /** Pairs with similarity >= threshold, most similar first. */
  pairs: NearDuplicatePair[];
  /** True when more pairs than maxPairs were found and the list was cut. */
  pairsTruncated: boolean;
}

/** Resolves and checks options against the number of rows. */
function resolveOptions(options: SimilarityOptions, count: number) {
  const neighbors = assertInteger('neighbors', options.neighbors ?? 10, 1, 100_000);
  return {
    neighbors: Math.min(neighbors, count - 1),
    duplicateThreshold: assertNumber('duplicateThreshold', options.duplicateThreshold ?? 0.98, -1, 1),
    blockSize: assertInteger('blockSize', options.blockSize ?? 512, 1, 1 << 20),
    maxPairs: assertInteger('maxPairs', options.maxPairs ?? 100_000, 0, 1 << 30),
    center: options.center ?? true,
  };
}

/**
 * Scans all pairs of rows of `vectors` ([count, dim] row-major) by cosine similarity.
 * Every block is one matrix product on the active TensorFlow backend.
 */
export async function scanSimilarities(
  vectors: Float32Array,
  count: number,
  dim: number,
  options: SimilarityOptions = {},
): Promise<SimilarityResult> {
  if (vectors.length !== count * dim) {
    throw new Error(`scanSimilarities: expected ${count} x ${dim} floats but received ${vectors.length}`);
  }
  if (count < 2) throw new Error(`scanSimilarities: need at least 2 rows, received ${count}`);
  const { neighbors, duplicateThreshold, blockSize, maxPairs, center } = resolveOptions(options, count);
  // [N, D], unit rows (a zero row stays zero), optionally after subtracting the mean row.
  const unit = tf.tidy(() => {
    const raw = tf.tensor2d(vectors, [count, dim]);
    return unitRows(center ? (tf.sub(raw, tf.mean(raw, 0, true)) as tf.Tensor2D) : raw);
  });
  const knnIndices = new Int32Array(count * neighbors);
  const knnSimilarities = new Float32Array(count * neighbors);
  let pairs: NearDuplicatePair[] = [];
  let pairsTruncated = false;
  try {
    for (let start = 0; start < count; start += blockSize) {
      const size = Math.min(blockSize, count - start);
      const { values, indices, hits } = tf.tidy(() => {
        const block = unit.slice([start, 0], [size, dim]); // [b, D]
        // Each row's neighbours, itself excluded; similarity [b, N].
        const { similarity, ...top } = topKBlock(block, unit, neighbors, start);
        const rows = tf.range(start, start + size, 1, 'int32').reshape([size, 1]);
        const columns = tf.range(0, count, 1, 'int32').reshape([1, count]);
        // Upper triangle only, so each pair is reported once.
        const above = tf.logicalAnd(tf.greater(columns, rows), tf.greaterEqual(similarity, duplicateThreshold));
        const hitCount = tf.sum(tf.cast(above, 'int32'));
        return { values: top.values, indices: top.indices, hits: { count: hitCount, mask: above, similarity } };
      });
      knnSimilarities.set(await values.data(), start * neighbors);
      knnIndices.set(await indices.data(), start * neighbors);
      values.dispose();
      indices.dispose();
      const hitCount = (await hits.count.data())[0];
      if (hitCount > 0) {
        const where = await tf.whereAsync(hits.mask); // [M, 2] (row in block, column)
        // Only the M hit values leave the device, not the whole [b, N] block.
        const hitValues = tf.gatherND(hits.similarity, where); // [M]
        const found = await where.data();
        const sims = await hitValues.data();
        tf.dispose([where, hitValues]);
        for (let m = 0; m < sims.length; m++) {
          pairs.push({ a: start + found[2 * m], b: found[2 * m + 1], similarity: sims[m] });
        }
        if (pairs.length > 2 * maxPairs) {
          pairs = sortPairs(pairs).slice(0, maxPairs);
          pairsTruncated = true;
        }
      }
      tf.dispose([hits.count, hits.mask, hits.similarity]);
    }
  } finally {
    unit.dispose();
  }
  pairs = sortPairs(pairs);
  if (pairs.length > maxPairs) {
    pairs = pairs.slice(0, maxPairs);
    pairsTruncated = true;
  }
  const meanKnnSimilarity = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    let sum = 0;
    for (let j = 0; j < neighbors; j++) sum += knnSimilarities[i * neighbors + j];
    meanKnnSimilarity[i] = sum / neighbors;
  }
  return { count, neighbors, knnIndices, knnSimilarities, meanKnnSimilarity, pairs, pairsTruncated };
}

function sortPairs(pairs: NearDuplicatePair[]): NearDuplicatePair[] {
  return pairs.sort((x, y) => y.similarity - x.similarity || x.a - y.a || x.b - y.b);
}

/** Row indices ordered from most to least outlying (lowest mean kNN similarity first). */
export function rankOutliers(meanKnnSimilarity: Float32Array): Int32Array {
  const order = Int32Array.from(meanKnnSimilarity.keys());
  return order.sort((x, y) => meanKnnSimilarity[x] - meanKnnSimilarity[y] || x - y);
}
