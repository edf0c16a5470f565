/** `selfsup eval` as a library call: a finetuned model folder on a labeled set -> a report folder. */
import path from 'node:path';
import type { InferenceSetting } from '../backbones/inference-graph.js';
import { openImageSource } from '../data/open.js';
import { checkOutputDir, namedInputs, type OutputDirOptions, writeOutputDir } from '../util/output-dir.js';
import { remapLabels } from './data.js';
import { evaluateProbabilities, writeEvaluationFiles } from './evaluate.js';
import { loadImageSet, withLabels } from './image-set.js';
import { loadClassifier } from './model-io.js';

export interface EvalJob {
  /** A model folder written by `selfsup finetune`. */
  model: string;
  /** Labeled images: class folders, a .csv/.arrow table, an IDX file (or `images,labels`), or an IDX folder (t10k split). */
  labels: string;
  /** Report folder (default `<model>/eval-<name of labels>`). */
  out?: string;
  /** Replace an earlier report in `out` (only the files selfsup wrote). */
  overwrite?: boolean;
  batchSize?: number;
  calibrationBins?: number;
  progress?: boolean;
  /** The forward pass as a compiled graph (default: where it can run, float32); see src/backbones/inference-graph.ts. */
  inference?: InferenceSetting;
  /** Called with status lines (which forward pass runs and why). */
  onNote?: (line: string) => void;
}

export interface EvalSummary {
  out: string;
  images: number;
  skippedImages: number;
  accuracy: number;
  macroF1: number;
  ece: number;
}

/** The report folder of an eval job (default `<model>/eval-<name of labels>`). */
export function evalOutputDir(job: Pick<EvalJob, 'model' | 'labels' | 'out'>): string {
  return job.out ?? path.join(job.model, `eval-${path.basename(job.labels).replace(/[^\w.-]+/g, '_')}`);
}

export async function runEvaluation(job: EvalJob): Promise<EvalSummary> {
  const out = evalOutputDir(job);
  const output: OutputDirOptions = {
    kind: 'eval',
    overwrite: job.overwrite,
    inputs: [
      // The default report folder lies inside the model folder: allowed, but not the model folder itself.
      { path: job.model, option: '<model>', outputMayBeInside: true },
      ...namedInputs({ '--labels': job.labels }),
    ],
  };
  checkOutputDir(out, output);
  const { classifier } = await loadClassifier(job.model);
  try {
    const { input, classNames } = classifier.spec;
    const source = await openImageSource(job.labels, { needLabels: true, split: 't10k' });
    const loaded = await loadImageSet(source, { size: input.size, channels: input.channels, progress: job.progress });
    const set = withLabels(loaded, remapLabels(loaded.labels, loaded.classNames, classNames, job.labels));
    if (job.inference)
      classifier.inference = { names: { compile: '--compile', precision: '--precision' }, ...job.inference };
    classifier.onForwardPath = (reason) => job.onNote?.(`forward pass: ${reason}`);
    const probabilities = classifier.predictProbabilities(set, job.batchSize ?? 256);
    const evaluation = evaluateProbabilities(probabilities, set.labels, classNames, job.calibrationBins ?? 15);
    await writeOutputDir(out, output, (dir) =>
      writeEvaluationFiles(dir, evaluation, {
        title: `${path.basename(job.model)} on ${path.basename(job.labels)} (${set.count} images)`,
        describe: (i) => set.describe(i),
        indices: set.sourceIndices,
        extra: { model: job.model, labels: job.labels, skipped: loaded.skipped ?? [] },
      }),
    );
    return {
      out,
      images: set.count,
      skippedImages: loaded.skipped?.length ?? 0,
      accuracy: evaluation.metrics.accuracy,
      macroF1: evaluation.metrics.macroF1,
      ece: evaluation.calibration.ece,
    };
  } finally {
    classifier.dispose();
  }
}
