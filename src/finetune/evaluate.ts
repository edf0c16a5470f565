/**
 * Evaluation report of a classifier on a labeled set: accuracy, per-class
 * precision / recall / F1, macro-F1, the confusion matrix (Arrow + PNG),
 * calibration (ECE with 15 bins + reliability diagram PNG), and every
 * prediction as an Arrow file. Written atomically into one folder.
 */
import path from 'node:path';
import { heatmapSvg, reliabilitySvg, writePng } from '../report/plot.js';
import { writeArrowTable } from '../util/arrow.js';
import { writeDirAtomic, writeFileAtomic } from '../util/atomic.js';
import { invalidOption } from '../util/errors.js';
import {
  argmaxRows,
  type Calibration,
  type ClassificationMetrics,
  calibration,
  classificationMetrics,
  confusionMatrix,
} from './metrics.js';

export interface Evaluation {
  classNames: string[];
  /** Row-major [N * K]. */
  probabilities: Float32Array;
  labels: Int32Array;
  predicted: Int32Array;
  confidence: Float32Array;
  /** Row-major K x K, rows = true class. */
  confusion: Int32Array;
  metrics: ClassificationMetrics;
  calibration: Calibration;
}

/** Metrics of probabilities [N * K] against labels [N] (labels < 0 are left out of the metrics). */
export function evaluateProbabilities(
  probabilities: Float32Array,
  labels: Int32Array,
  classNames: string[],
  numBins = 15,
): Evaluation {
  const k = classNames.length;
  if (probabilities.length !== labels.length * k) {
    throw invalidOption('probabilities', `${labels.length} x ${k} values`, probabilities.length);
  }
  const { predicted, confidence } = argmaxRows(probabilities, k);
  const confusion = confusionMatrix(labels, predicted, k);
  const labeledConfidence: number[] = [];
  const correct: boolean[] = [];
  for (let i = 0; i < labels.length; i++) {
    if (labels[i] < 0) continue;
    labeledConfidence.push(Math.min(1, Math.max(0, confidence[i])));
    correct.push(predicted[i] === labels[i]);
  }
  return {
    classNames,
    probabilities,
    labels,
    predicted,
    confidence,
    confusion,
    metrics: classificationMetrics(confusion, k),
    calibration: calibration(labeledConfidence, correct, numBins),
  };
}

/** The numbers of report.json (no per-sample arrays). */
export function evaluationSummary(e: Evaluation, extra: Record<string, unknown> = {}) {
  return {
    accuracy: e.metrics.accuracy,
    macroF1: e.metrics.macroF1,
    macroPrecision: e.metrics.macroPrecision,
    macroRecall: e.metrics.macroRecall,
    balancedAccuracy: e.metrics.balancedAccuracy,
    ece: e.calibration.ece,
    mce: e.calibration.mce,
    calibrationBins: e.calibration.bins.length,
    samples: e.metrics.total,
    classNames: e.classNames,
    perClass: e.metrics.perClass.map((c, i) => ({ class: e.classNames[i], ...c })),
    confusion: Array.from({ length: e.classNames.length }, (_, r) =>
      Array.from(e.confusion.subarray(r * e.classNames.length, (r + 1) * e.classNames.length)),
    ),
    calibration: e.calibration.bins,
    ...extra,
  };
}

const pct = (v: number) => `${(100 * v).toFixed(1)}%`;

/** A short Markdown summary: headline numbers and the per-class table. */
export function evaluationMarkdown(e: Evaluation, title = 'Evaluation'): string {
  const lines = [
    `# ${title}`,
    '',
    `- samples: ${e.metrics.total}`,
    `- accuracy: ${pct(e.metrics.accuracy)}`,
    `- macro-F1: ${e.metrics.macroF1.toFixed(4)}`,
    `- balanced accuracy: ${pct(e.metrics.balancedAccuracy)}`,
    `- expected calibration error (${e.calibration.bins.length} bins): ${e.calibration.ece.toFixed(4)}`,
    '',
    '| class | precision | recall | F1 | support |',
    '|---|---:|---:|---:|---:|',
    ...e.metrics.perClass.map(
      (c, i) =>
        `| ${e.classNames[i]} | ${c.precision.toFixed(3)} | ${c.recall.toFixed(3)} | ${c.f1.toFixed(3)} | ${c.support} |`,
    ),
    '',
    'Files: `predictions.arrow`, `confusion.arrow`, `confusion.png`, `reliability.png`, `report.json`.',
    '',
  ];
  return lines.join('\n');
}

export interface ReportOptions {
  title?: string;
  /** A name per sample (path or `file#i`) for predictions.arrow. */
  describe?: (i: number) => string;
  /** Index of each sample in its source (default 0..N-1). */
  indices?: Int32Array;
  /** Extra fields for report.json (e.g. the model, the data, the recipe). */
  extra?: Record<string, unknown>;
}

/** Writes the report files into `dir` (which must exist). */
export async function writeEvaluationFiles(dir: string, e: Evaluation, options: ReportOptions = {}): Promise<void> {
  const k = e.classNames.length;
  const n = e.labels.length;
  const name = (c: number) => (c >= 0 ? e.classNames[c] : null);
  const correct: boolean[] = Array.from(e.labels, (y, i) => y >= 0 && e.predicted[i] === y);
  await writeArrowTable(
    path.join(dir, 'predictions.arrow'),
    {
      index: options.indices ?? Int32Array.from({ length: n }, (_, i) => i),
      path: Array.from({ length: n }, (_, i) => (options.describe ? options.describe(i) : `#${i}`)),
      label: Int32Array.from(e.labels),
      label_name: Array.from(e.labels, name),
      predicted: Int32Array.from(e.predicted),
      predicted_name: Array.from(e.predicted, name),
      confidence: Float32Array.from(e.confidence),
      correct,
      probabilities: { kind: 'vector', dim: k, data: e.probabilities },
    },
    { classes: JSON.stringify(e.classNames) },
  );
  const trueNames: string[] = [];
  const predictedNames: string[] = [];
  for (let t = 0; t < k; t++) {
    for (let p = 0; p < k; p++) {
      trueNames.push(e.classNames[t]);
      predictedNames.push(e.classNames[p]);
    }
  }
  await writeArrowTable(
    path.join(dir, 'confusion.arrow'),
    { true_label: trueNames, predicted_label: predictedNames, count: Int32Array.from(e.confusion) },
    { classes: JSON.stringify(e.classNames), layout: 'long: one row per (true, predicted) pair' },
  );
  await writePng(
    path.join(dir, 'confusion.png'),
    heatmapSvg(e.confusion, k, k, {
      title: `${options.title ?? 'Confusion matrix'} (accuracy ${pct(e.metrics.accuracy)})`,
      rowLabels: e.classNames,
      colLabels: e.classNames,
      xLabel: 'predicted',
      yLabel: 'true',
    }),
  );
  const bins = e.calibration.bins;
  await writePng(
    path.join(dir, 'reliability.png'),
    reliabilitySvg(
      bins.map((b) => b.confidence),
      bins.map((b) => b.accuracy),
      bins.map((b) => b.count),
      { title: `Reliability (ECE ${e.calibration.ece.toFixed(3)}, ${bins.length} bins)` },
    ),
  );
  await writeFileAtomic(
    path.join(dir, 'report.json'),
    `${JSON.stringify(evaluationSummary(e, options.extra), null, 2)}\n`,
  );
  await writeFileAtomic(path.join(dir, 'report.md'), evaluationMarkdown(e, options.title));
}

/** Writes the report as a whole folder, atomically (an existing folder is replaced). */
export async function writeEvaluationReport(dir: string, e: Evaluation, options: ReportOptions = {}): Promise<void> {
  await writeDirAtomic(dir, (tmp) => writeEvaluationFiles(tmp, e, options));
}
