/**
 * A seeded 2-D map of embeddings with UMAP (umap-js). The neighbour graph is
 * the cosine kNN already computed by {@link scanSimilarities} (passed in as
 * precomputed distances 1 - similarity), so umap-js skips its own search.
 */
import { UMAP } from 'umap-js';
import { assertInteger, assertNumber } from '../util/errors.js';
import { createRng } from '../util/rng.js';
import type { SimilarityResult } from './similarity.js';

export interface MapOptions {
  /** Seed of the layout's random initialisation and sampling. Default 0. */
  seed?: string | number;
  /** Optimisation epochs, 10..5000. Default: 500 below 2,000 points, else 200 (umap-js's rule). */
  epochs?: number;
  /** UMAP min_dist in (0, 1]. Default 0.1. */
  minDist?: number;
}

/**
 * 2-D coordinates [N, 2] (row-major) of the rows behind `similarity`.
 * Same seed and same input give the same map.
 */
export function projectToPlane(similarity: SimilarityResult, options: MapOptions = {}): Float32Array {
  const { count, knnIndices, knnSimilarities } = similarity;
  if (count < 3) throw new Error(`a 2-D map needs at least 3 images, received ${count}`);
  // umap-js requires more points than graph neighbours (self included).
  const neighbors = Math.min(similarity.neighbors, count - 2);
  const stride = similarity.neighbors;
  const epochs =
    options.epochs === undefined ? (count < 2000 ? 500 : 200) : assertInteger('epochs', options.epochs, 10, 5000);
  const minDist = assertNumber('minDist', options.minDist ?? 0.1, 1e-6, 1);
  const rng = createRng(options.seed ?? 0).derive('umap');
  // UMAP's graph includes each point as its own nearest neighbour at distance 0.
  const indices: number[][] = [];
  const distances: number[][] = [];
  for (let i = 0; i < count; i++) {
    const rowIndices = [i];
    const rowDistances = [0];
    for (let j = 0; j < neighbors; j++) {
      rowIndices.push(knnIndices[i * stride + j]);
      rowDistances.push(Math.max(0, 1 - knnSimilarities[i * stride + j]));
    }
    indices.push(rowIndices);
    distances.push(rowDistances);
  }
  const umap = new UMAP({
    nComponents: 2,
    nNeighbors: neighbors + 1,
    nEpochs: epochs,
    minDist,
    random: () => rng.next(),
  });
  umap.setPrecomputedKNN(indices, distances);
  // umap-js only reads X for its (unused here) transform search graph; one
  // zero-length row per point keeps it cheap.
  const placeholder: number[][] = Array.from({ length: count }, () => []);
  umap.initializeFit(placeholder);
  for (let epoch = 0; epoch < epochs; epoch++) umap.step();
  const embedding = umap.getEmbedding();
  const out = new Float32Array(count * 2);
  for (let i = 0; i < count; i++) {
    out[2 * i] = embedding[i][0];
    out[2 * i + 1] = embedding[i][1];
  }
  return out;
}
