/**
 * The second half of `selfsup embed`: given embeddings, write them as Arrow,
 * list near-duplicate pairs and outliers (Arrow), and draw a seeded 2-D UMAP
 * map coloured by label (PNG, plus its coordinates as Arrow).
 */
import path from 'node:path';
import { type EmbeddingRows, writeEmbeddings } from '../export/embeddings.js';
import { scatterSvg, writePng } from '../report/plot.js';
import { writeArrowTable } from '../util/arrow.js';
import { writeFileAtomic } from '../util/atomic.js';
import { assertInteger } from '../util/errors.js';
import { projectToPlane } from './projection.js';
import { rankOutliers, scanSimilarities } from './similarity.js';

export interface AnalyseOptions {
  /** Cosine similarity at or above which two images are listed as near-duplicates, in [-1, 1]. Default 0.98. */
  duplicateThreshold?: number;
  /** Compare mean-centred embeddings (default true; see SimilarityOptions.center). */
  center?: boolean;
  /** Neighbours for the outlier score and the map's graph, 2..200. Default 10. */
  neighbors?: number;
  /** How many outliers to list (lowest mean kNN similarity first), 0..N. Default 50. */
  outliers?: number;
  /** Draw the 2-D map (default true; needs at least 3 images). */
  map?: boolean;
  /** Seed of the map layout. Default 0. */
  seed?: string | number;
  /** UMAP epochs (default: 500 below 2,000 images, else 200). */
  mapEpochs?: number;
  /** Extra key/values stored in the embeddings file's metadata (backbone, source). */
  metadata?: Record<string, string>;
  /** Called with a short status text before each stage. */
  onStage?: (stage: string) => void;
  /** The folder the files end up in when `outDir` is a staging folder (the paths returned and in summary.json name it). */
  finalDir?: string;
}

/** Where each output of an embedding run is. */
export interface EmbedOutputs {
  embeddings: string;
  duplicates: string;
  outliers: string;
  map?: string;
  mapCoordinates?: string;
  summary: string;
}

export interface EmbedSummary {
  images: number;
  dim: number;
  labeled: boolean;
  duplicatePairs: number;
  duplicatePairsTruncated: boolean;
  duplicateThreshold: number;
  /** Whether similarities are of mean-centred embeddings. */
  centered: boolean;
  neighbors: number;
  outliersListed: number;
  files: EmbedOutputs;
}

/** Writes every embedding output into `outDir` and returns where they are. */
export async function analyseEmbeddings(
  rows: EmbeddingRows,
  outDir: string,
  options: AnalyseOptions = {},
): Promise<EmbedSummary> {
  const count = rows.indices.length;
  const neighbors = assertInteger('neighbors', options.neighbors ?? 10, 2, 200);
  const outlierCount = Math.min(count, assertInteger('outliers', options.outliers ?? 50, 0, 1_000_000));
  const duplicateThreshold = options.duplicateThreshold ?? 0.98;
  const stage = options.onStage ?? (() => {});
  const finalDir = options.finalDir ?? outDir;
  // Paths name the final folder; files are written into outDir.
  const staged = (file: string) => path.join(outDir, path.basename(file));
  const files: EmbedOutputs = {
    embeddings: path.join(finalDir, 'embeddings.arrow'),
    duplicates: path.join(finalDir, 'near-duplicates.arrow'),
    outliers: path.join(finalDir, 'outliers.arrow'),
    summary: path.join(finalDir, 'summary.json'),
  };
  stage(`writing ${files.embeddings}`);
  await writeEmbeddings(staged(files.embeddings), rows, { dim: String(rows.dim), ...options.metadata });
  if (count < 2) throw new Error(`embed: need at least 2 readable images to compare, found ${count}`);

  stage(`comparing ${count} images (cosine similarity, blocked matrix products)`);
  const center = options.center ?? true;
  const scan = await scanSimilarities(rows.vectors, count, rows.dim, { neighbors, duplicateThreshold, center });
  const paths = rows.paths;
  await writeArrowTable(
    staged(files.duplicates),
    {
      index_a: Int32Array.from(scan.pairs, (p) => rows.indices[p.a]),
      index_b: Int32Array.from(scan.pairs, (p) => rows.indices[p.b]),
      path_a: scan.pairs.map((p) => paths[p.a]),
      path_b: scan.pairs.map((p) => paths[p.b]),
      similarity: Float32Array.from(scan.pairs, (p) => p.similarity),
    },
    { threshold: String(duplicateThreshold), centered: String(center), truncated: String(scan.pairsTruncated) },
  );

  const ranked = rankOutliers(scan.meanKnnSimilarity).subarray(0, outlierCount);
  const k = scan.neighbors;
  const outlierColumns: Parameters<typeof writeArrowTable>[1] = {
    rank: Int32Array.from(ranked, (_, r) => r + 1),
    index: Int32Array.from(ranked, (i) => rows.indices[i]),
    path: Array.from(ranked, (i) => paths[i]),
    mean_knn_similarity: Float32Array.from(ranked, (i) => scan.meanKnnSimilarity[i]),
    nearest_index: Int32Array.from(ranked, (i) => rows.indices[scan.knnIndices[i * k]]),
    nearest_path: Array.from(ranked, (i) => paths[scan.knnIndices[i * k]]),
  };
  if (rows.labels) outlierColumns.label = Int32Array.from(ranked, (i) => rows.labels![i]);
  await writeArrowTable(staged(files.outliers), outlierColumns, { neighbors: String(k) });

  if (options.map !== false && count >= 3) {
    stage(`drawing the 2-D map (UMAP, seed ${options.seed ?? 0})`);
    const xy = projectToPlane(scan, { seed: options.seed ?? 0, epochs: options.mapEpochs });
    const x = Float32Array.from({ length: count }, (_, i) => xy[2 * i]);
    const y = Float32Array.from({ length: count }, (_, i) => xy[2 * i + 1]);
    files.mapCoordinates = path.join(finalDir, 'map.arrow');
    files.map = path.join(finalDir, 'map.png');
    const mapColumns: Parameters<typeof writeArrowTable>[1] = { index: rows.indices, path: paths, x, y };
    if (rows.labels) mapColumns.label = rows.labels;
    await writeArrowTable(staged(files.mapCoordinates), mapColumns, { seed: String(options.seed ?? 0) });
    await writePng(
      staged(files.map),
      scatterSvg(x, y, {
        labels: rows.labels,
        classNames: rows.labels ? rows.classNames : undefined,
        title: `Embedding map (UMAP) of ${count} images${rows.labels ? ', coloured by label' : ''}`,
        radius: count > 2000 ? 1.5 : 2.5,
      }),
    );
  }
  const summary: EmbedSummary = {
    images: count,
    dim: rows.dim,
    labeled: Boolean(rows.labels),
    duplicatePairs: scan.pairs.length,
    duplicatePairsTruncated: scan.pairsTruncated,
    duplicateThreshold,
    centered: center,
    neighbors: k,
    outliersListed: ranked.length,
    files,
  };
  await writeFileAtomic(staged(files.summary), `${JSON.stringify(summary, null, 2)}\n`);
  return summary;
}
