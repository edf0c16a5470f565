/**
 * `selfsup select` as a library call: embed an unlabeled pool with a backbone (or a
 * finetuned classifier's backbone, whose head then gives probabilities), pick the
 * images to label next, and write the list, a contact sheet and optionally the files.
 *
 * ```ts
 * const r = await selectImages({ model: 'models/focal', data: 'pool/', labeled: 'labeled/',
 *   budget: 100, strategy: 'hybrid', out: 'to-label' });
 * console.log(r.files.list, r.picks.length);
 * ```
 */
import { copyFileSync, existsSync, mkdirSync, realpathSync, statSync, symlinkSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import type { Backbone } from '../backbones/types.js';
import { formatCsv } from '../data/datasets/label-table.js';
import { type OpenSourceOptions, openImageSource } from '../data/open.js';
import type { ImageSource, InputSpec } from '../data/types.js';
import { type EmbedFailure, embedImages } from '../embed/embed-images.js';
import { loadModelForEmbedding } from '../embed/inputs.js';
import type { Classifier } from '../finetune/classifier.js';
import { loadClassifier, readClassifierFile } from '../finetune/model-io.js';
import { writeContactSheet } from '../report/contact-sheet.js';
import { writeArrowTable } from '../util/arrow.js';
import { writeFileAtomic } from '../util/atomic.js';
import { assertInteger, assertOneOf, InputError } from '../util/errors.js';
import { beginOutputDir, claimOutputDir } from '../util/output-dir.js';

import { type ProbabilityMatrix, predictions, type UncertaintyMeasure } from './scores.js';
import { type SelectionResult, type SelectionStrategy, selectFromPool } from './strategies.js';

export const PICK_EXPORTS = ['none', 'copy', 'link'] as const;
export type PickExport = (typeof PICK_EXPORTS)[number];

export interface SelectImagesOptions extends Pick<OpenSourceOptions, 'classFolders' | 'labels' | 'classNames'> {
  /** A finetuned model folder (classifier: every strategy), or a backbone/run folder/.safetensors/model.json (random, diversity). */
  model: string;
  /** The unlabeled pool: a folder, scan manifest, label table or IDX file (labels in it are ignored for picking). */
  data: string;
  /** Images already labeled (same kinds of source): never picked again, nor their near-duplicates. */
  labeled?: string;
  /** How many images to pick. */
  budget: number;
  strategy: SelectionStrategy;
  measure?: UncertaintyMeasure;
  seed?: number;
  duplicateThreshold?: number;
  /** Output folder: selection.csv, selection.arrow, contact-sheet.png, summary.json, picks/ (when asked). */
  out: string;
  /** Replace an earlier selection in `out` (only the files selfsup wrote). */
  overwrite?: boolean;
  /** Also put the picked files in `<out>/picks/` as copies or symbolic links. Default none. */
  exportPicks?: PickExport;
  /** Input side in px (default: the model's). */
  inputSize?: number;
  batchSize?: number;
  /** Thumbnails on the contact sheet (at most). Default 200. */
  sheetLimit?: number;
  onStage?: (text: string) => void;
  onProgress?: (stage: string, done: number, total: number) => void;
}

export interface SelectedImage {
  rank: number;
  /** Index in the pool source, and its path (or `file.idx#123`). */
  index: number;
  path: string;
  score: number;
  cluster: number;
  predictedClass?: string;
  probability?: number;
  nearestLabeled?: string;
  nearestLabeledDistance?: number;
}

export interface SelectImagesResult {
  strategy: SelectionStrategy;
  picks: SelectedImage[];
  poolImages: number;
  /** Pool images that could not be decoded (skipped). */
  failures: EmbedFailure[];
  /** Pool images left out because they are labeled files. */
  excludedLabeled: number;
  skippedDuplicates: number;
  files: { list: string; table: string; sheet: string; summary: string; picks?: string };
  seconds: number;
}

interface LoadedSelector {
  backbone: Backbone;
  preprocess: InputSpec;
  classifier?: Classifier;
  dispose(): void;
}

async function loadSelector(model: string, inputSize?: number): Promise<LoadedSelector> {
  if (existsSync(model) && statSync(model).isDirectory() && existsSync(path.join(model, 'classifier.json'))) {
    readClassifierFile(model);
    const { classifier } = await loadClassifier(model);
    const { input } = classifier.spec;
    return {
      backbone: classifier.backbone,
      preprocess: { size: inputSize ?? input.size, channels: input.channels, mean: input.mean, std: input.std },
      classifier,
      dispose: () => classifier.dispose(),
    };
  }
  const loaded = await loadModelForEmbedding(model, inputSize);
  return { backbone: loaded.backbone, preprocess: loaded.preprocess, dispose: () => loaded.backbone.dispose() };
}

function realPathOf(source: ImageSource, index: number): string | undefined {
  const name = source.describe(index);
  try {
    return realpathSync(name);
  } catch {
    return undefined;
  }
}

/** Picks `budget` images of `data` to label next and writes the outputs into `out`. */
export async function selectImages(options: SelectImagesOptions): Promise<SelectImagesResult> {
  const started = Date.now();
  const budget = assertInteger('budget', options.budget, 1, 10_000_000);
  const exportPicks = assertOneOf('exportPicks', options.exportPicks ?? 'none', PICK_EXPORTS);
  const output = claimOutputDir(options, 'select', { model: '<model>', data: '--data', labeled: '--labeled' });
  const selector = await loadSelector(options.model, options.inputSize);
  try {
    const pool = await openImageSource(options.data, options);
    options.onStage?.(`embedding the pool: ${pool.size} images`);
    const poolRows = await embedImages(selector.backbone, pool, selector.preprocess, {
      batchSize: options.batchSize,
      onProgress: (done, total) => options.onProgress?.('embed pool', done, total),
    });
    const count = poolRows.indices.length;
    if (count === 0) throw new InputError(options.data, 'holds no readable image to select from');

    let labeledRows: Awaited<ReturnType<typeof embedImages>> | undefined;
    let labeledSource: ImageSource | undefined;
    const exclude: number[] = [];
    if (options.labeled) {
      labeledSource = await openImageSource(options.labeled, { classFolders: options.classFolders });
      options.onStage?.(`embedding the labeled set: ${labeledSource.size} images`);
      labeledRows = await embedImages(selector.backbone, labeledSource, selector.preprocess, {
        batchSize: options.batchSize,
        onProgress: (done, total) => options.onProgress?.('embed labeled', done, total),
      });
      // The same files (by real path) are never offered; copies elsewhere are caught as near-duplicates.
      const labeledFiles = new Set<string>();
      for (const i of labeledRows.indices) {
        const real = realPathOf(labeledSource, i);
        if (real) labeledFiles.add(real);
      }
      for (let row = 0; row < count; row++) {
        const real = realPathOf(pool, poolRows.indices[row]);
        if (real && labeledFiles.has(real)) exclude.push(row);
      }
    }

    let probabilities: ProbabilityMatrix | undefined;
    let labeledClasses: Int32Array | undefined;
    const classNames = selector.classifier?.spec.classNames;
    if (selector.classifier && classNames) {
      probabilities = {
        values: selector.classifier.probabilitiesFromFeatures(poolRows.vectors),
        count,
        numClasses: classNames.length,
      };
      if (labeledRows?.labels && labeledRows.classNames) {
        const names = labeledRows.classNames;
        labeledClasses = Int32Array.from(labeledRows.labels, (l) => (l < 0 ? -1 : classNames.indexOf(names[l])));
      }
    }

    options.onStage?.(`selecting ${budget} of ${count - exclude.length} images (${options.strategy})`);
    const selection: SelectionResult = selectFromPool(
      {
        embeddings: { values: poolRows.vectors, count, dim: poolRows.dim },
        labeled: labeledRows
          ? { values: labeledRows.vectors, count: labeledRows.indices.length, dim: labeledRows.dim }
          : undefined,
        labeledClasses,
        probabilities,
        exclude,
      },
      {
        budget,
        strategy: options.strategy,
        measure: options.measure,
        seed: options.seed,
        duplicateThreshold: options.duplicateThreshold,
        onProgress: (done, total) => options.onProgress?.('select', done, total),
      },
    );

    const predicted = probabilities ? predictions(probabilities) : undefined;
    const picks: SelectedImage[] = selection.picks.map((p, i) => {
      const nearest = selection.nearestLabeled.row[i];
      return {
        rank: p.rank,
        index: poolRows.indices[p.row],
        path: poolRows.paths[p.row],
        score: p.score,
        cluster: p.cluster,
        predictedClass: predicted && classNames ? classNames[predicted.label[p.row]] : undefined,
        probability: predicted ? predicted.probability[p.row] : undefined,
        nearestLabeled: nearest >= 0 && labeledRows ? labeledRows.paths[nearest] : undefined,
        nearestLabeledDistance: nearest >= 0 ? selection.nearestLabeled.distance[i] : undefined,
      };
    });

    await beginOutputDir(options.out, output, [
      'selection.csv',
      'selection.arrow',
      'contact-sheet.png',
      'summary.json',
      ...(exportPicks === 'none' ? [] : ['picks']),
    ]);
    const files = await writeSelection(options, pool, picks, exportPicks);
    const result: SelectImagesResult = {
      strategy: selection.strategy,
      picks,
      poolImages: pool.size,
      failures: poolRows.failures,
      excludedLabeled: exclude.length,
      skippedDuplicates: selection.skippedDuplicates,
      files,
      seconds: (Date.now() - started) / 1000,
    };
    const { picks: _omit, ...summary } = result;
    await writeFileAtomic(
      files.summary,
      `${JSON.stringify({ ...summary, model: options.model, data: options.data, labeled: options.labeled ?? null, budget, measure: options.measure ?? 'margin', seed: options.seed ?? 0 }, null, 2)}\n`,
    );
    return result;
  } finally {
    selector.dispose();
  }
}

async function writeSelection(
  options: SelectImagesOptions,
  pool: ImageSource,
  picks: SelectedImage[],
  exportPicks: PickExport,
): Promise<SelectImagesResult['files']> {
  const out = options.out;
  const files: SelectImagesResult['files'] = {
    list: path.join(out, 'selection.csv'),
    table: path.join(out, 'selection.arrow'),
    sheet: path.join(out, 'contact-sheet.png'),
    summary: path.join(out, 'summary.json'),
  };
  const header = [
    'rank',
    'path',
    'score',
    'predicted_class',
    'probability',
    'nearest_labeled',
    'nearest_labeled_distance',
  ];
  await writeFileAtomic(
    files.list,
    formatCsv([
      header,
      ...picks.map((p) => [
        p.rank,
        p.path,
        p.score,
        p.predictedClass,
        p.probability,
        p.nearestLabeled,
        p.nearestLabeledDistance,
      ]),
    ]),
  );
  await writeArrowTable(
    files.table,
    {
      rank: Int32Array.from(picks, (p) => p.rank),
      index: Int32Array.from(picks, (p) => p.index),
      path: picks.map((p) => p.path),
      score: Float64Array.from(picks, (p) => p.score),
      cluster: Int32Array.from(picks, (p) => p.cluster),
      predicted_class: picks.map((p) => p.predictedClass ?? null),
      probability: Float64Array.from(picks, (p) => p.probability ?? Number.NaN),
      nearest_labeled: picks.map((p) => p.nearestLabeled ?? null),
      nearest_labeled_distance: Float64Array.from(picks, (p) => p.nearestLabeledDistance ?? Number.NaN),
    },
    { strategy: options.strategy, model: options.model, data: options.data },
  );
  const sheetPicks = picks.slice(0, options.sheetLimit ?? 200);
  const tiles = await Promise.all(
    sheetPicks.map(async (p) => ({
      image: await pool.load(p.index, 3),
      caption: `#${p.rank}${p.predictedClass ? ` ${p.predictedClass}?` : ''}`,
    })),
  );
  await writeContactSheet(files.sheet, tiles);
  if (exportPicks !== 'none') {
    const dir = path.join(out, 'picks');
    mkdirSync(dir, { recursive: true });
    const width = String(picks.length).length;
    for (const p of picks) {
      const prefix = String(p.rank).padStart(width, '0');
      const real = realPathOf(pool, p.index);
      if (real) {
        const target = path.join(dir, `${prefix}-${path.basename(real)}`);
        if (exportPicks === 'link') symlinkSync(real, target);
        else copyFileSync(real, target);
      } else {
        // Images inside a container file (IDX) are written out as PNG.
        const image = await pool.load(p.index, 3);
        const png = await sharp(Buffer.from(image.data), {
          raw: { width: image.width, height: image.height, channels: image.channels },
        })
          .png()
          .toBuffer();
        await writeFileAtomic(path.join(dir, `${prefix}-${p.index}.png`), png);
      }
    }
    files.picks = dir;
  }
  return files;
}
