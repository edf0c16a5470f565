#!/usr/bin/env node
/**
 * The all-pairs cosine scan behind `selfsup embed` (kNN, near-duplicates,
 * outlier scores): blocked matrix products on native TensorFlow
 * (`scanSimilarities`) against a plain JavaScript double loop over the same
 * unit vectors (the reference, measured in the same run), and the UMAP map.
 *
 *   npm run build && node bench/embed-similarity.mjs [--images 4000] [--dim 256] [--neighbors 10]
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const { initEngine } = await import(path.join(root, 'dist/src/engine/index.js'));
const { scanSimilarities } = await import(path.join(root, 'dist/src/embed/similarity.js'));
const { projectToPlane } = await import(path.join(root, 'dist/src/embed/projection.js'));
const { createRng } = await import(path.join(root, 'dist/src/util/rng.js'));
const os = await import('node:os');

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return Number(i >= 0 ? args[i + 1] : fallback);
};
const count = option('images', 4000);
const dim = option('dim', 256);
const neighbors = option('neighbors', 10);
const engine = initEngine();

const rng = createRng('bench-embed');
const vectors = new Float32Array(count * dim);
for (let i = 0; i < vectors.length; i++) vectors[i] = rng.normal();

// Reference: plain JS, unit rows, every pair once (upper triangle), kNN by insertion into a sorted list.
function plainScan() {
  const unit = new Float32Array(vectors);
  for (let i = 0; i < count; i++) {
    let norm = 0;
    for (let d = 0; d < dim; d++) norm += unit[i * dim + d] ** 2;
    norm = Math.sqrt(norm) || 1;
    for (let d = 0; d < dim; d++) unit[i * dim + d] /= norm;
  }
  const best = Array.from({ length: count }, () => []);
  let pairs = 0;
  const push = (list, value) => {
    if (list.length === neighbors && value <= list[neighbors - 1]) return;
    let at = list.length;
    while (at > 0 && list[at - 1] < value) at--;
    list.splice(at, 0, value);
    if (list.length > neighbors) list.pop();
  };
  for (let i = 0; i < count; i++) {
    for (let j = i + 1; j < count; j++) {
      let dot = 0;
      for (let d = 0; d < dim; d++) dot += unit[i * dim + d] * unit[j * dim + d];
      if (dot >= 0.98) pairs++;
      push(best[i], dot);
      push(best[j], dot);
    }
  }
  return pairs;
}

const time = async (work) => {
  const t0 = performance.now();
  const result = await work();
  return { seconds: (performance.now() - t0) / 1000, result };
};
await scanSimilarities(vectors.subarray(0, 64 * dim), 64, dim, { neighbors }); // warm-up
const tensors = await time(() => scanSimilarities(vectors, count, dim, { neighbors, duplicateThreshold: 0.98 }));
const plain = await time(async () => plainScan());
const map = await time(async () => projectToPlane(tensors.result, { seed: 0 }));
const load = os.loadavg()[0].toFixed(1);
console.log(`backend ${engine.backend}, ${count} vectors x ${dim}, k = ${neighbors}, load average ${load}`);
console.log(`blocked matrix products (scanSimilarities): ${tensors.seconds.toFixed(2)} s`);
console.log(`plain JS double loop (reference):           ${plain.seconds.toFixed(2)} s`);
console.log(`speed-up: ${(plain.seconds / tensors.seconds).toFixed(1)}x`);
console.log(`UMAP 2-D map of the same kNN graph: ${map.seconds.toFixed(2)} s`);
