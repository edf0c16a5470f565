/**
 * The geometry selection works in: embeddings centred and scaled to unit length,
 * so that the similarity of two images is their cosine and the distance k-center
 * greedy minimises is sqrt(2 - 2 cos). Everything is computed in blocks of rows on
 * the active TensorFlow backend; no N x N matrix is ever held in memory.
 */
import * as tf from '@tensorflow/tfjs';
import { cosineTopK, unitRows } from '../probes/cosine-search.js';
import { InputError } from '../util/errors.js';

/** Row-major embeddings: `count` rows of `dim` floats. */
export interface EmbeddingMatrix {
  values: Float32Array;
  count: number;
  dim: number;
}

/** The unit rows of a pool (and of its labeled set) as kept tensors, with the centre used. */
export interface UnitSpace {
  /** [N, D] unit rows of the pool (a zero row stays zero). */
  pool: tf.Tensor2D;
  /** [L, D] unit rows of the labeled set, centred with the pool's mean (undefined when none). */
  labeled?: tf.Tensor2D;
  dispose(): void;
}

function checkMatrix(name: string, m: EmbeddingMatrix): void {
  if (m.values.length !== m.count * m.dim) {
    throw new InputError(name, `expected ${m.count} x ${m.dim} floats but received ${m.values.length}`);
  }
  for (let i = 0; i < m.values.length; i++) {
    if (!Number.isFinite(m.values[i])) {
      throw new InputError(name, `embedding row ${Math.floor(i / m.dim)} holds a non-finite value (${m.values[i]})`);
    }
  }
}

/**
 * Centres both sets on the pool's mean embedding (pooled ReLU features all point into
 * one orthant; centred, unrelated images have cosine near 0) and scales rows to unit length.
 */
export function unitSpace(pool: EmbeddingMatrix, labeled?: EmbeddingMatrix, center = true): UnitSpace {
  checkMatrix('pool embeddings', pool);
  if (labeled) {
    checkMatrix('labeled embeddings', labeled);
    if (labeled.dim !== pool.dim) {
      throw new InputError('labeled embeddings', `have ${labeled.dim} dimensions but the pool's have ${pool.dim}`);
    }
  }
  const [poolUnit, labeledUnit] = tf.tidy(() => {
    const raw = tf.tensor2d(pool.values, [pool.count, pool.dim]);
    const mean = center ? tf.mean(raw, 0, true) : tf.zeros([1, pool.dim]);
    const unit = (x: tf.Tensor2D): tf.Tensor2D => unitRows(tf.sub(x, mean) as tf.Tensor2D);
    const poolRows = unit(raw);
    const labeledRows =
      labeled && labeled.count > 0 ? unit(tf.tensor2d(labeled.values, [labeled.count, labeled.dim])) : undefined;
    return labeledRows ? [poolRows, labeledRows] : [poolRows];
  }) as tf.Tensor2D[];
  return {
    pool: poolUnit,
    labeled: labeledUnit,
    dispose() {
      poolUnit.dispose();
      labeledUnit?.dispose();
    },
  };
}

/**
 * For every pool row, the highest cosine similarity to any row of `others` and which
 * row that is: the top-1 of the one blocked cosine search (src/probes).
 */
export function nearestAmong(pool: tf.Tensor2D, others: tf.Tensor2D): { similarity: Float32Array; index: Int32Array } {
  const top = cosineTopK(others, 1, pool);
  return { similarity: top.similarities, index: top.indices };
}

/**
 * Keeps, for every pool row, its highest similarity to the rows picked so far (and to
 * the labeled set): one matrix-vector product per pick.
 */
export class CoverageTracker {
  /** [N] highest cosine similarity of each pool row to any picked or labeled row (-Infinity: none). */
  readonly maxSimilarity: Float32Array;

  constructor(private readonly space: UnitSpace) {
    const n = space.pool.shape[0];
    this.maxSimilarity = space.labeled
      ? nearestAmong(space.pool, space.labeled).similarity
      : new Float32Array(n).fill(-Infinity);
  }

  /** Adds pool row `row` to the picked set and updates every row's coverage. */
  add(row: number): void {
    const sims = tf.tidy(() => {
      const picked = tf.slice(this.space.pool, [row, 0], [1, -1]);
      return tf.reshape(tf.matMul(this.space.pool, picked, false, true), [-1]);
    });
    const values = sims.dataSync() as Float32Array;
    sims.dispose();
    const max = this.maxSimilarity;
    for (let i = 0; i < values.length; i++) if (values[i] > max[i]) max[i] = values[i];
  }
}
