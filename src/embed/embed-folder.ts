/**
 * `selfsup embed` as a library call: load a backbone, embed a set of images,
 * and write embeddings, near-duplicates, outliers and a 2-D map.
 *
 * ```ts
 * const result = await embedFolder({ model: 'runs/demo/pretrain', data: 'photos/', out: 'runs/demo/embed' });
 * console.log(result.files.embeddings, result.duplicatePairs);
 * ```
 */

import path from 'node:path';
import { type OpenSourceOptions, openImageSource } from '../data/open.js';
import type { CompileSetting, PrecisionSetting } from '../engine/graph-path.js';
import { writeArrowTable } from '../util/arrow.js';
import { assertInteger } from '../util/errors.js';
import { claimOutputDir, writeOutputDir } from '../util/output-dir.js';

import { createRng } from '../util/rng.js';
import { type AnalyseOptions, analyseEmbeddings, type EmbedSummary } from './analyse.js';
import { type EmbedFailure, embedImages } from './embed-images.js';
import { loadModelForEmbedding } from './inputs.js';

export interface EmbedFolderOptions
  extends AnalyseOptions,
    Pick<OpenSourceOptions, 'classFolders' | 'labels' | 'classNames'> {
  /** A run folder, a backbone export folder, a torchvision .safetensors file or a tfjs model.json. */
  model: string;
  /** Images: any source `openImageSource` opens (folder, class folders, manifest, label table, IDX). */
  data: string;
  /** Output folder: new, empty, or an earlier embed output (with `overwrite`). */
  out: string;
  /** Replace an earlier embed output in `out` (only the files selfsup wrote). */
  overwrite?: boolean;
  /** Input side in px (default: the manifest's input size). */
  inputSize?: number;
  /** Images per forward pass. Default 128. */
  batchSize?: number;
  /** Embed a seeded random sample of at most this many images (default: all). */
  limit?: number;
  /** Called after each batch. */
  onProgress?: (done: number, total: number) => void;
  /** Told when `inputSize` disagrees with the input size the backbone's manifest recommends. */
  onWarning?: (message: string) => void;
  /** The forward pass as a compiled graph (default auto: where it can run) and its precision (default float32). */
  compile?: CompileSetting;
  precision?: PrecisionSetting;
}

export interface EmbedFolderResult extends EmbedSummary {
  /** The weights file the backbone came from. */
  modelFile: string;
  /** Images in the source, and how many were embedded. */
  sourceImages: number;
  /** Unreadable images, skipped (also written to failures.arrow when any). */
  failures: EmbedFailure[];
  seconds: number;
}

/** Embeds the images of `options.data` with the backbone of `options.model` and writes every output to `options.out`. */
export async function embedFolder(options: EmbedFolderOptions): Promise<EmbedFolderResult> {
  const started = Date.now();
  const output = claimOutputDir(options, 'embed', { model: '<model>', data: '--data', labels: '--labels' });
  const model = await loadModelForEmbedding(options.model, options.inputSize);
  const recommended = model.manifest.inputSize;
  if (options.inputSize !== undefined && recommended !== null && options.inputSize !== recommended) {
    options.onWarning?.(`input size ${options.inputSize} differs from the backbone's recommended ${recommended} px`);
  }
  try {
    const source = await openImageSource(options.data, options);
    let subset: Int32Array | undefined;
    if (options.limit !== undefined) {
      const limit = assertInteger('limit', options.limit, 3, 10_000_000);
      if (limit < source.size) {
        const order = createRng(options.seed ?? 0)
          .derive('embed-sample')
          .permutation(source.size);
        subset = order.subarray(0, limit).sort();
      }
    }
    options.onStage?.(
      `embedding ${subset?.length ?? source.size} images with ${model.manifest.architecture} from ${model.weightsFile}`,
    );
    const rows = await embedImages(model.backbone, source, model.preprocess, {
      batchSize: options.batchSize,
      subset,
      onProgress: options.onProgress,
      inference: {
        compile: options.compile ?? 'auto',
        precision: options.precision ?? 'float32',
        names: { compile: '--compile', precision: '--precision' },
      },
      onForwardPath: (reason) => options.onStage?.(`forward pass: ${reason}`),
    });
    let summary: EmbedSummary | undefined;
    await writeOutputDir(options.out, output, async (dir) => {
      summary = await analyseEmbeddings(rows, dir, {
        ...options,
        finalDir: options.out,
        metadata: {
          model: model.weightsFile,
          architecture: model.manifest.architecture,
          data: options.data,
          inputSize: String(model.preprocess.size),
          ...options.metadata,
        },
      });
      if (rows.failures.length > 0) {
        await writeArrowTable(path.join(dir, 'failures.arrow'), {
          index: Int32Array.from(rows.failures, (f) => f.index),
          path: rows.failures.map((f) => f.path),
          reason: rows.failures.map((f) => f.reason),
        });
      }
    });
    return {
      ...summary!,
      modelFile: model.weightsFile,
      sourceImages: source.size,
      failures: rows.failures,
      seconds: (Date.now() - started) / 1000,
    };
  } finally {
    model.backbone.dispose();
  }
}
