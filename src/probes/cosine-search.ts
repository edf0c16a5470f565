/**
 * Top-k cosine search: the one block-wise search that the kNN classifier, the
 * leave-one-out label check and `embed`'s neighbour/near-duplicate scan share.
 * Rows are L2-normalised (a zero row stays zero), optionally after subtracting
 * the mean row of the bank, and compared in blocks of query rows so memory stays
 * at [blockRows, N] floats.
 */
import * as tf from '@tensorflow/tfjs';
import { invalidOption } from '../util/errors.js';

/** Rows of `x` [N, D] scaled to unit length (a zero row stays zero). Call inside tf.tidy. */
export function unitRows(x: tf.Tensor2D): tf.Tensor2D {
  return tf.div(x, tf.maximum(tf.norm(x, 'euclidean', 1, true), 1e-12)) as tf.Tensor2D;
}

/**
 * The k largest similarities of one block of unit query rows [b, D] against the
 * unit bank [N, D]. With `selfOffset` the block holds bank rows selfOffset..+b
 * and each row's own column is excluded. Returns similarities [b, N] too, for
 * callers that look at more than the top k (near-duplicate pairs). Call inside tf.tidy.
 */
export function topKBlock(
  block: tf.Tensor2D,
  bank: tf.Tensor2D,
  k: number,
  selfOffset?: number,
): { similarity: tf.Tensor2D; values: tf.Tensor2D; indices: tf.Tensor2D } {
  const similarity = tf.matMul(block, bank, false, true) as tf.Tensor2D; // [b, N]
  let searched = similarity;
  if (selfOffset !== undefined) {
    const [rows, n] = similarity.shape;
    const self = tf.equal(
      tf.range(selfOffset, selfOffset + rows, 1, 'int32').reshape([rows, 1]),
      tf.range(0, n, 1, 'int32').reshape([1, n]),
    );
    searched = tf.where(self, tf.fill([rows, n], -Infinity), similarity) as tf.Tensor2D;
  }
  const top = tf.topk(searched, k, true);
  return { similarity, values: top.values as tf.Tensor2D, indices: top.indices as tf.Tensor2D };
}

export interface CosineTopKOptions {
  /** Compare the bank with itself and leave each row out of its own neighbours (leave-one-out). */
  excludeSelf?: boolean;
  /** Subtract the bank's mean row from bank and queries before comparing (default false). */
  center?: boolean;
  /** Query rows per matrix product (default: about 4M similarities per block). */
  blockRows?: number;
}

export interface TopK {
  /** Neighbours per query actually returned: min(k, N) (N - 1 when excluding self). */
  k: number;
  /** [Q, k] row-major bank row indices, most similar first. */
  indices: Int32Array;
  /** [Q, k] row-major cosine similarities. */
  similarities: Float32Array;
}

/**
 * The k most cosine-similar bank rows of every query row. `bank` [N, D] and
 * `queries` [Q, D] (or the bank itself when `queries` is omitted). Synchronous;
 * leaves no tensors behind.
 */
export function cosineTopK(bank: tf.Tensor2D, k: number, queries?: tf.Tensor2D, options: CosineTopKOptions = {}): TopK {
  const [n, dim] = bank.shape;
  if (queries && queries.shape[1] !== dim) {
    throw invalidOption('query features', `${dim} values per row (as the bank)`, queries.shape[1]);
  }
  if (!(Number.isInteger(k) && k >= 1)) throw invalidOption('k', 'an integer >= 1', k);
  const excludeSelf = options.excludeSelf === true;
  if (excludeSelf && queries) throw new Error('cosineTopK: excludeSelf compares the bank with itself; omit queries');
  const kk = Math.min(k, excludeSelf ? n - 1 : n);
  if (kk < 1) throw invalidOption('k', `at least 1 neighbour (the bank has ${n} rows)`, k);
  const { unitBank, unitQueries } = tf.tidy(() => {
    const mean = options.center ? tf.mean(bank, 0, true) : undefined;
    const prepare = (x: tf.Tensor2D) => unitRows(mean ? (tf.sub(x, mean) as tf.Tensor2D) : x);
    const b = prepare(bank);
    return { unitBank: b, unitQueries: queries ? prepare(queries) : b };
  });
  const q = unitQueries.shape[0];
  const blockRows = options.blockRows ?? Math.max(1, Math.floor(4_000_000 / Math.max(1, n)));
  const indices = new Int32Array(q * kk);
  const similarities = new Float32Array(q * kk);
  try {
    for (let start = 0; start < q; start += blockRows) {
      const size = Math.min(blockRows, q - start);
      tf.tidy(() => {
        const block = unitQueries.slice([start, 0], [size, dim]);
        const top = topKBlock(block, unitBank, kk, excludeSelf ? start : undefined);
        similarities.set(top.values.dataSync(), start * kk);
        indices.set(top.indices.dataSync(), start * kk);
      });
    }
  } finally {
    tf.dispose(unitQueries === unitBank ? [unitBank] : [unitBank, unitQueries]);
  }
  return { k: kk, indices, similarities };
}
