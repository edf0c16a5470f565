/**
 * A finetuned model folder as ONNX: `image` [batch, C, H, W] in [0, 1] -> `logits`
 * [batch, K] (and `probabilities` with softmax). The graph and its choices are
 * src/export/onnx.ts; this file only knows where a classifier keeps its parts.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Head } from '../backbones/types.js';
import { isBackboneManifestFile, isSelfsupOnnx, manifestBeside, saveBackboneOnnx } from '../export/backbone-store.js';
import type { BackboneManifest } from '../export/manifest.js';
import type { OnnxHead } from '../export/onnx.js';
import { UsageError } from '../util/errors.js';
import { checkOutputDir, checkOutputFile, type OutputDirOptions } from '../util/output-dir.js';
import { CLASSIFIER_FILE, loadClassifier } from './model-io.js';

export interface ClassifierOnnxOptions {
  /** `float32` (default) or `float16` weights (cast to float32 when the model loads). */
  weights?: 'float32' | 'float16';
  /** Also output `probabilities` = softmax(logits). Default false. */
  softmax?: boolean;
  /** Replace an earlier ONNX export at `out` (only what selfsup wrote there). */
  overwrite?: boolean;
}

/** True when `dir` is a model folder written by `selfsup finetune` (it holds classifier.json). */
export function isClassifierFolder(dir: string): boolean {
  return existsSync(path.join(dir, CLASSIFIER_FILE));
}

function isBlockHead(head: Head): head is Head & OnnxHead {
  return Array.isArray((head as Partial<OnnxHead>).blocks) && typeof (head as Partial<OnnxHead>).name === 'string';
}

/**
 * Writes the classifier of a finetuned model folder as ONNX, into a directory
 * (`model.onnx` + `manifest.json`; new, empty, or an earlier classifier ONNX
 * export with `overwrite`) or a file ending in `.onnx`. Input size and
 * mean/std are the classifier's; class names are in the metadata (`class_names`,
 * a JSON list in output order) and in the manifest's notes.
 */
export async function exportClassifierOnnx(
  modelDir: string,
  out: string,
  options: ClassifierOnnxOptions = {},
): Promise<BackboneManifest> {
  const inputs = [{ path: modelDir, option: '<model>' }];
  const single = out.endsWith('.onnx');
  const output: OutputDirOptions = { kind: 'classifier-onnx', overwrite: options.overwrite, inputs };
  if (single) {
    const overwrite = options.overwrite;
    checkOutputFile(out, { isOwn: isSelfsupOnnx, what: 'an .onnx export', overwrite, inputs });
    checkOutputFile(manifestBeside(out), {
      isOwn: isBackboneManifestFile,
      what: 'a backbone manifest',
      overwrite,
      inputs,
    });
  } else checkOutputDir(out, output);
  const { classifier } = await loadClassifier(modelDir);
  try {
    const { input, classNames } = classifier.spec;
    const head = classifier.head;
    if (!isBlockHead(head)) throw new UsageError(`${modelDir}: the classifier head has no block specs to export`);
    return await saveBackboneOnnx(
      classifier.backbone,
      out,
      {
        inputSize: input.size,
        mean: input.mean,
        std: input.std,
        pretextTask: 'finetuned',
        source: modelDir,
        notes: { classNames },
      },
      {
        head,
        output: single ? undefined : output,
        softmax: options.softmax ?? false,
        weights: options.weights ?? 'float32',
        metadata: { class_names: JSON.stringify(classNames) },
        description: `selfsup classifier (${classNames.length} classes) from ${path.basename(path.resolve(modelDir))}`,
      },
    );
  } finally {
    classifier.dispose();
  }
}
