/**
 * A finetuned model folder:
 *
 * ```
 * <dir>/classifier.json          input spec, class names, head shape, backbone config, training summary
 * <dir>/classifier.safetensors   every variable (backbone + head) by name, tfjs layout, F32
 * <dir>/backbone/                the finetuned backbone alone, torchvision names (loadBackbone reads it)
 * ```
 * plus whatever the caller adds (history.arrow, report/). Written atomically.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { createBackbone } from '../backbones/registry.js';
import type { Backbone, BackboneConfig } from '../backbones/types.js';
import { saveBackbone } from '../export/backbone-store.js';
import { encodeSafetensors, entryToFloat32, readSafetensors } from '../export/safetensors.js';
import { writeDirAtomic, writeFileAtomic } from '../util/atomic.js';
import { InputError } from '../util/errors.js';
import { type OutputDirOptions, writeOutputDir } from '../util/output-dir.js';
import { createRng } from '../util/rng.js';
import { Classifier, type ClassifierSpec } from './classifier.js';

export const CLASSIFIER_FILE = 'classifier.json';
export const CLASSIFIER_WEIGHTS_FILE = 'classifier.safetensors';
export const CLASSIFIER_FORMAT = 'selfsup-classifier/1';

export interface ClassifierFile {
  format: typeof CLASSIFIER_FORMAT;
  spec: ClassifierSpec;
  backbone: BackboneConfig & { featureDim: number };
  /** Free-form: the resolved recipe, the data used, final metrics. */
  info: Record<string, unknown>;
}

export interface SaveClassifierOptions {
  /** Also write `<dir>/backbone/` (torchvision-named safetensors + manifest). Default true. */
  exportBackbone?: boolean;
  /** Writes more files into the (temporary) folder before it is renamed into place. */
  fill?: (dir: string) => Promise<void>;
  /** Write as a user-facing output folder (marker, --overwrite rules of util/output-dir.ts) instead of replacing `dir`. */
  output?: OutputDirOptions;
}

/** Writes the model folder atomically (an existing folder is replaced, unless `options.output` says how). */
export async function saveClassifier(
  classifier: Classifier,
  dir: string,
  info: Record<string, unknown> = {},
  options: SaveClassifierOptions = {},
): Promise<void> {
  const tensors: Record<string, { dtype: 'F32'; shape: number[]; values: Float32Array }> = {};
  for (const v of classifier.variables()) {
    tensors[v.name] = { dtype: 'F32', shape: v.variable.shape.slice(), values: v.variable.dataSync() as Float32Array };
  }
  const file: ClassifierFile = {
    format: CLASSIFIER_FORMAT,
    spec: classifier.spec,
    backbone: { ...classifier.backbone.config, featureDim: classifier.backbone.featureDim },
    info,
  };
  const write = options.output
    ? (fill: (tmp: string) => Promise<void>) => writeOutputDir(dir, options.output!, fill)
    : (fill: (tmp: string) => Promise<void>) => writeDirAtomic(dir, fill);
  await write(async (tmp) => {
    await writeFileAtomic(
      path.join(tmp, CLASSIFIER_WEIGHTS_FILE),
      encodeSafetensors(tensors, { format: CLASSIFIER_FORMAT }),
    );
    await writeFileAtomic(path.join(tmp, CLASSIFIER_FILE), `${JSON.stringify(file, null, 2)}\n`);
    if (options.exportBackbone ?? true) {
      await saveBackbone(classifier.backbone, path.join(tmp, 'backbone'), { pretextTask: 'finetuned' });
    }
    await options.fill?.(tmp);
  });
}

/** Reads `<dir>/classifier.json`, naming the file on any problem. */
export function readClassifierFile(dir: string): ClassifierFile {
  const file = path.join(dir, CLASSIFIER_FILE);
  if (!existsSync(file)) {
    throw new InputError(
      dir,
      `not a finetuned model folder (no ${CLASSIFIER_FILE}; make one with \`selfsup finetune\`)`,
    );
  }
  let parsed: ClassifierFile;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8')) as ClassifierFile;
  } catch (e) {
    throw new InputError(file, `not valid JSON (${(e as Error).message})`);
  }
  if (parsed.format !== CLASSIFIER_FORMAT) {
    throw new InputError(file, `Expected format "${CLASSIFIER_FORMAT}" but received ${JSON.stringify(parsed.format)}`);
  }
  return parsed;
}

export interface LoadClassifierOptions {
  /** Builds the backbone for a config (default: the backbone registry, uninitialised). */
  createBackbone?: (config: BackboneConfig) => Backbone;
}

/** Loads a model folder written by {@link saveClassifier}. The caller disposes the classifier. */
export async function loadClassifier(
  dir: string,
  options: LoadClassifierOptions = {},
): Promise<{ classifier: Classifier; file: ClassifierFile }> {
  const file = readClassifierFile(dir);
  const { featureDim: _featureDim, ...config } = file.backbone;
  const backbone = options.createBackbone
    ? options.createBackbone(config)
    : createBackbone(config.arch, { ...config, init: 'none' });
  const classifier = new Classifier(backbone, file.spec, createRng('load'));
  const weightsFile = path.join(dir, CLASSIFIER_WEIGHTS_FILE);
  try {
    const contents = readSafetensors(weightsFile);
    for (const v of classifier.variables()) {
      const entry = contents.tensors.get(v.name);
      if (!entry) throw new InputError(weightsFile, `missing tensor "${v.name}"`);
      if (entry.shape.join(',') !== v.variable.shape.join(',')) {
        throw new InputError(
          weightsFile,
          `tensor "${v.name}" has shape [${entry.shape}] but the model needs [${v.variable.shape}]`,
        );
      }
      const values = entryToFloat32(entry);
      tf.tidy(() => v.variable.assign(tf.tensor(values, v.variable.shape, v.variable.dtype)));
    }
  } catch (e) {
    classifier.dispose();
    throw e;
  }
  return { classifier, file };
}
