/**
 * A simulated labeling loop, the evidence for a selection strategy: from a labeled
 * pool whose labels stay hidden until an image is picked, run R rounds of "select N,
 * reveal their labels, fit the classifier, evaluate on the test set" for each strategy
 * and seed.
 *
 * The classifier of each round is a softmax regression on the frozen backbone's
 * standardised features (a linear probe, as the probe stage of `selfsup finetune`
 * trains), so that hundreds of rounds fit in minutes. Round 1 starts from no labels:
 * there is no classifier yet, so the strategies that need one (uncertainty, hybrid,
 * balanced) make their first picks with `firstRound` (default `typical`).
 */
import path from 'node:path';
import { openImageSource } from '../data/open.js';
import { embedImages } from '../embed/embed-images.js';
import { loadModelForEmbedding } from '../embed/inputs.js';
import { imbalancedSubset } from '../finetune/data.js';
import { argmaxRows, classificationMetrics, confusionMatrix } from '../finetune/metrics.js';
import { fitLinearProbe, probeProbabilities } from '../probes/linear-probe.js';
import { lineChartSvg, writePng } from '../report/plot.js';
import { rowColumns, writeArrowTable } from '../util/arrow.js';
import { writeFileAtomic } from '../util/atomic.js';
import { assertInteger, assertNumber, InputError, UsageError } from '../util/errors.js';
import { beginOutputDir, claimOutputDir } from '../util/output-dir.js';

import { createRng } from '../util/rng.js';
import type { UncertaintyMeasure } from './scores.js';
import { CLASSIFIER_STRATEGIES, type SelectionStrategy, selectFromPool } from './strategies.js';

/** Frozen features of labeled images: the study's pool or test set. */
export interface LabeledFeatures {
  /** [N, D] row-major. */
  vectors: Float32Array;
  labels: Int32Array;
  dim: number;
}

export interface StudyRound {
  strategy: SelectionStrategy;
  seed: number;
  round: number;
  /** Labels revealed so far. */
  labels: number;
  accuracy: number;
  macroF1: number;
  /** Classes with at least one revealed label. */
  classesCovered: number;
  /** Revealed labels of the rare classes (when rare classes are named). */
  rarePicked: number;
  /** rarePicked / labels. */
  rareShare: number;
  /** Seconds spent selecting this round's images. */
  selectSeconds: number;
}

export interface StudyOptions {
  strategies: SelectionStrategy[];
  seeds: number[];
  rounds: number;
  /** Images revealed per round. */
  perRound: number;
  numClasses: number;
  /** Classes whose share of the picks is reported (e.g. the classes made rare in the pool). */
  rareClasses?: number[];
  measure?: UncertaintyMeasure;
  duplicateThreshold?: number;
  /** How strategies that need a classifier pick in round 1, when there is none yet. Default `typical`. */
  firstRound?: SelectionStrategy;
  /** Steps of the softmax regression (default: the linear probe's). */
  probeSteps?: number;
  onRound?: (row: StudyRound) => void;
}

function gatherRows(vectors: Float32Array, dim: number, rows: ArrayLike<number>): Float32Array {
  const out = new Float32Array(rows.length * dim);
  for (let i = 0; i < rows.length; i++) out.set(vectors.subarray(rows[i] * dim, (rows[i] + 1) * dim), i * dim);
  return out;
}

/** Runs the simulated labeling loop on precomputed features. Leaves no tensors behind. */
export function runSelectionStudy(pool: LabeledFeatures, test: LabeledFeatures, options: StudyOptions): StudyRound[] {
  const rounds = assertInteger('rounds', options.rounds, 1, 1000);
  const perRound = assertInteger('perRound', options.perRound, 1, 1_000_000);
  const numClasses = assertInteger('numClasses', options.numClasses, 2, 100_000);
  if (pool.dim !== test.dim) throw new UsageError(`pool features have ${pool.dim} dims, test features ${test.dim}`);
  const poolCount = pool.labels.length;
  const testCount = test.labels.length;
  if (rounds * perRound > poolCount) {
    throw new UsageError(`${rounds} rounds of ${perRound} need ${rounds * perRound} images, the pool has ${poolCount}`);
  }
  const dim = pool.dim;
  // One feature matrix [pool; test] so that one fit predicts both.
  const all = new Float32Array((poolCount + testCount) * dim);
  all.set(pool.vectors);
  all.set(test.vectors, poolCount * dim);
  const rare = new Set(options.rareClasses ?? []);
  const firstRound = options.firstRound ?? 'typical';
  if (CLASSIFIER_STRATEGIES.includes(firstRound)) {
    throw new UsageError(
      `firstRound must not need a classifier (random, diversity or typical), received "${firstRound}"`,
    );
  }
  const results: StudyRound[] = [];
  for (const strategy of options.strategies) {
    for (const seed of options.seeds) {
      const picked: number[] = [];
      let probabilities: Float32Array | undefined;
      for (let round = 1; round <= rounds; round++) {
        const started = Date.now();
        const needsClassifier = CLASSIFIER_STRATEGIES.includes(strategy);
        const effective: SelectionStrategy = needsClassifier && !probabilities ? firstRound : strategy;
        const selection = selectFromPool(
          {
            embeddings: { values: pool.vectors, count: poolCount, dim },
            labeled:
              picked.length > 0
                ? { values: gatherRows(pool.vectors, dim, picked), count: picked.length, dim }
                : undefined,
            labeledClasses: Int32Array.from(picked, (row) => pool.labels[row]),
            probabilities:
              effective === strategy && probabilities
                ? { values: probabilities.subarray(0, poolCount * numClasses), count: poolCount, numClasses }
                : undefined,
            exclude: picked,
          },
          {
            budget: perRound,
            strategy: effective,
            measure: options.measure,
            seed: `${seed}-round-${round}`,
            duplicateThreshold: options.duplicateThreshold,
          },
        );
        const selectSeconds = (Date.now() - started) / 1000;
        for (const p of selection.picks) picked.push(p.row);
        const probe = fitLinearProbe(
          { features: pool.vectors, labels: pool.labels, dim },
          numClasses,
          options.probeSteps ? { steps: options.probeSteps } : {},
          picked,
        );
        probabilities = probeProbabilities(probe, all);
        const testProbabilities = probabilities.subarray(poolCount * numClasses);
        const { predicted } = argmaxRows(testProbabilities, numClasses);
        const metrics = classificationMetrics(confusionMatrix(test.labels, predicted, numClasses), numClasses);
        const covered = new Set(picked.map((row) => pool.labels[row])).size;
        const rarePicked = picked.filter((row) => rare.has(pool.labels[row])).length;
        const row: StudyRound = {
          strategy,
          seed,
          round,
          labels: picked.length,
          accuracy: metrics.accuracy,
          macroF1: metrics.macroF1,
          classesCovered: covered,
          rarePicked,
          rareShare: picked.length > 0 ? rarePicked / picked.length : 0,
          selectSeconds,
        };
        results.push(row);
        options.onRound?.(row);
      }
    }
  }
  return results;
}

/** Mean and sample standard deviation. */
function meanStd(values: number[]): { mean: number; std: number } {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const variance = values.length > 1 ? values.reduce((a, v) => a + (v - mean) ** 2, 0) / (values.length - 1) : 0;
  return { mean, std: Math.sqrt(variance) };
}

/** A Markdown table: one row per label count, one column per strategy (mean ± std over seeds). */
export function studyTable(rows: StudyRound[], metric: 'accuracy' | 'macroF1' | 'rareShare', scale = 100): string {
  const strategies = [...new Set(rows.map((r) => r.strategy))];
  const counts = [...new Set(rows.map((r) => r.labels))].sort((a, b) => a - b);
  const lines = [`| labels | ${strategies.join(' | ')} |`, `|---|${strategies.map(() => '---').join('|')}|`];
  for (const labels of counts) {
    const cells = strategies.map((s) => {
      const values = rows.filter((r) => r.strategy === s && r.labels === labels).map((r) => r[metric] * scale);
      if (values.length === 0) return '';
      const { mean, std } = meanStd(values);
      return `${mean.toFixed(1)} ± ${std.toFixed(1)}`;
    });
    lines.push(`| ${labels} | ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}

export interface SelectionStudyJob {
  /** A backbone: run folder, backbone folder, .safetensors or model.json. */
  model: string;
  /** Labeled pool (labels hidden until picked): class folders, label table or IDX (with its labels file). */
  pool: string;
  /** Labeled test set. */
  test: string;
  classFolders?: boolean;
  strategies: SelectionStrategy[];
  seeds: number[];
  rounds: number;
  perRound: number;
  /** Use a seeded random sample of at most this many pool / test images. */
  poolLimit?: number;
  testLimit?: number;
  /** Make these classes rare in the pool (keep `rareFraction` of their images). */
  rareClasses?: number[];
  rareFraction?: number;
  measure?: UncertaintyMeasure;
  duplicateThreshold?: number;
  firstRound?: SelectionStrategy;
  inputSize?: number;
  batchSize?: number;
  out: string;
  /** Replace an earlier study in `out` (only the files selfsup wrote). */
  overwrite?: boolean;
  onStage?: (text: string) => void;
  onProgress?: (stage: string, done: number, total: number) => void;
  onRound?: (row: StudyRound) => void;
}

export interface SelectionStudyResult {
  rows: StudyRound[];
  poolImages: number;
  testImages: number;
  embedSeconds: number;
  studySeconds: number;
  files: { table: string; report: string; plot: string };
}

function sample(size: number, limit: number | undefined, name: string): Int32Array | undefined {
  if (limit === undefined || limit >= size) return undefined;
  return createRng(0).derive('study-sample', name).permutation(size).subarray(0, limit).sort();
}

/** Embeds pool and test once with the backbone, runs the study, writes study.arrow, study.md and accuracy.png. */
export async function runSelectionStudyJob(job: SelectionStudyJob): Promise<SelectionStudyResult> {
  const started = Date.now();
  const output = claimOutputDir(job, 'select-study', { model: '<model>', pool: '--pool', test: '--test' });
  const model = await loadModelForEmbedding(job.model, job.inputSize);
  let poolFeatures: LabeledFeatures;
  let testFeatures: LabeledFeatures;
  let numClasses: number;
  try {
    const poolSource = await openImageSource(job.pool, { classFolders: job.classFolders });
    const testSource = await openImageSource(job.test, { classFolders: job.classFolders });
    for (const [name, source] of [
      [job.pool, poolSource],
      [job.test, testSource],
    ] as const) {
      if (!source.labels)
        throw new InputError(
          name,
          'a selection study needs labeled images (class folders, a label table, or IDX with labels)',
        );
    }
    let poolSubset = sample(poolSource.size, job.poolLimit, 'pool');
    if (job.rareClasses && job.rareClasses.length > 0) {
      const fraction = assertNumber('rareFraction', job.rareFraction ?? 0.1, 1e-6, 1);
      const positions = poolSubset ?? Int32Array.from({ length: poolSource.size }, (_, i) => i);
      poolSubset = imbalancedSubset(
        positions,
        poolSource.labels as Int32Array,
        job.rareClasses,
        fraction,
        createRng(0).derive('rare'),
      );
    }
    job.onStage?.(`embedding the pool (${poolSubset?.length ?? poolSource.size} images) and the test set`);
    const embedded = async (source: typeof poolSource, subset: Int32Array | undefined, stage: string) => {
      const rows = await embedImages(model.backbone, source, model.preprocess, {
        batchSize: job.batchSize,
        subset,
        onProgress: (done, total) => job.onProgress?.(stage, done, total),
      });
      return { vectors: rows.vectors, labels: rows.labels as Int32Array, dim: rows.dim };
    };
    poolFeatures = await embedded(poolSource, poolSubset, 'embed pool');
    testFeatures = await embedded(testSource, sample(testSource.size, job.testLimit, 'test'), 'embed test');
    numClasses = poolSource.classNames?.length ?? 0;
    for (const labels of [poolFeatures.labels, testFeatures.labels]) {
      for (const label of labels) numClasses = Math.max(numClasses, label + 1);
    }
  } finally {
    model.backbone.dispose();
  }
  const embedSeconds = (Date.now() - started) / 1000;
  job.onStage?.(
    `running ${job.strategies.length} strategies x ${job.seeds.length} seeds x ${job.rounds} rounds of ${job.perRound}`,
  );
  const studyStarted = Date.now();
  const rows = runSelectionStudy(poolFeatures, testFeatures, {
    strategies: job.strategies,
    seeds: job.seeds,
    rounds: job.rounds,
    perRound: job.perRound,
    numClasses,
    rareClasses: job.rareClasses,
    measure: job.measure,
    duplicateThreshold: job.duplicateThreshold,
    firstRound: job.firstRound,
    onRound: job.onRound,
  });
  const studySeconds = (Date.now() - studyStarted) / 1000;
  await beginOutputDir(job.out, output, ['study.arrow', 'study.md', 'accuracy.png']);
  const files = {
    table: path.join(job.out, 'study.arrow'),
    report: path.join(job.out, 'study.md'),
    plot: path.join(job.out, 'accuracy.png'),
  };
  await writeArrowTable(
    files.table,
    rowColumns(
      rows,
      'strategy:utf8 seed:int32 round:int32 labels:int32 accuracy macroF1 classesCovered:int32 rarePicked:int32 rareShare selectSeconds',
    ),
  );
  const strategies = [...new Set(rows.map((r) => r.strategy))];
  const series = strategies.map((s) => {
    const counts = [...new Set(rows.filter((r) => r.strategy === s).map((r) => r.labels))].sort((a, b) => a - b);
    return {
      name: s,
      x: counts,
      y: counts.map(
        (c) => meanStd(rows.filter((r) => r.strategy === s && r.labels === c).map((r) => r.accuracy * 100)).mean,
      ),
    };
  });
  await writePng(
    files.plot,
    lineChartSvg(series, {
      title: `Test accuracy by labels picked (mean of ${job.seeds.length} seed(s))`,
      xLabel: 'labels',
      yLabel: 'accuracy (%)',
    }),
  );
  const report = [
    `# Selection study`,
    '',
    `Backbone ${job.model}; pool ${job.pool} (${poolFeatures.labels.length} images${job.rareClasses?.length ? `, classes ${job.rareClasses.join(', ')} kept at ${job.rareFraction ?? 0.1} of their images` : ''}); test ${job.test} (${testFeatures.labels.length} images).`,
    `${job.rounds} rounds of ${job.perRound} labels, seeds ${job.seeds.join(', ')}; classifier: softmax regression on the frozen backbone's features; round 1 of uncertainty, hybrid and balanced: ${job.firstRound ?? 'typical'}.`,
    '',
    '## Test accuracy (%), mean ± std over seeds',
    '',
    studyTable(rows, 'accuracy'),
    '',
    '## Macro-F1 (x100)',
    '',
    studyTable(rows, 'macroF1'),
    ...(job.rareClasses?.length
      ? ['', `## Share of picks from the rare classes (%)`, '', studyTable(rows, 'rareShare')]
      : []),
    '',
    `Embedding: ${embedSeconds.toFixed(1)} s; study: ${studySeconds.toFixed(1)} s.`,
    '',
  ].join('\n');
  await writeFileAtomic(files.report, report);
  return {
    rows,
    poolImages: poolFeatures.labels.length,
    testImages: testFeatures.labels.length,
    embedSeconds,
    studySeconds,
    files,
  };
}
