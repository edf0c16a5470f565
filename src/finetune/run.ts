/**
 * `selfsup finetune` as a library call: open the backbone and the data, train
 * the classifier by the recipe, evaluate it, rank suspicious labels, and write
 * the model folder (atomically):
 *
 * ```
 * <out>/classifier.json, classifier.safetensors, backbone/   the model (see model-io.ts)
 * <out>/recipe.yaml        the fully resolved recipe
 * <out>/history.arrow      per-epoch loss, accuracy, learning rate, FixMatch mask rate, auxiliary loss
 * <out>/metrics.arrow      per-step and per-epoch rows (as a pretraining run's), curves.png their plot
 * <out>/report/            evaluation report (see evaluate.ts)
 * <out>/label-review.arrow training samples ranked by how likely their label is wrong
 * <out>/imbalance.json     class counts and imbalance summary
 * <out>/summary.json       headline numbers
 * ```
 *
 * While it trains, checkpoints live in `<out>.training/` (see train-checkpoints.ts);
 * `resume` continues from there after a crash; the folder is removed once `<out>` is written.
 */
import { existsSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { createBackbone } from '../backbones/registry.js';
import type { Backbone } from '../backbones/types.js';
import { loadBackbone } from '../export/backbone-store.js';
import type { BackboneManifest } from '../export/manifest.js';
import { stringifyRecipe } from '../recipes/load.js';
import type { MetricsRow } from '../train/metrics.js';
import { writeCurves } from '../train/metrics.js';
import { differingKeys } from '../train/run-dir.js';
import { writeArrowTable } from '../util/arrow.js';
import { writeFileAtomic } from '../util/atomic.js';
import { UsageError } from '../util/errors.js';
import { checkOutputDir, namedInputs, type OutputDirOptions } from '../util/output-dir.js';
import { createRng } from '../util/rng.js';

export { type DataSpec, type InputSpec, type PreparedData, prepareData, type SubsetOptions } from './prepare-data.js';

import type { FinetuneRecipe } from '../recipes/finetune-schema.js';
import { Classifier } from './classifier.js';
import { type Evaluation, evaluateProbabilities, writeEvaluationFiles } from './evaluate.js';
import {
  type ImbalanceSummary,
  imbalanceSummary,
  knnLabelDistribution,
  type LabelReview,
  outOfFoldProbabilities,
  precisionAtK,
  rankSuspiciousLabels,
  writeLabelReview,
} from './label-problems.js';
import { saveClassifier } from './model-io.js';
import { type DataSpec, type InputSpec, type PreparedData, prepareData, type SubsetOptions } from './prepare-data.js';
import { preprocessingMismatches, resolveInput, trainOptionsOf } from './recipe.js';
import { type SelfTrainingOutcome, type SelfTrainingRound, selfTrainOnData } from './self-training.js';
import { type EpochMetrics, type TrainContext, type TrainResult, trainClassifier } from './train.js';

/**
 * Test-set features of a frozen backbone, reused across runs that only train a
 * head on it (a label-budget study over seeds, a series of linear probes).
 * Keyed by the caller (e.g. `pretrained` or `scratch:3`).
 */
export type FeatureCache = Map<string, Float32Array>;

export interface FinetuneOutcome {
  classifier: Classifier;
  training: TrainResult;
  evaluation: Evaluation;
  review?: LabelReview;
  imbalance: ImbalanceSummary;
  /** Precision at k (k = number flipped) of the review when labels were flipped on purpose. */
  flippedPrecisionAtK?: number;
  seconds: number;
}

/**
 * Trains and evaluates a classifier on prepared data. The classifier owns
 * `backbone` (dispose the classifier when done).
 */
export async function finetuneOnData(
  backbone: Backbone,
  input: InputSpec,
  recipe: FinetuneRecipe,
  data: PreparedData,
  /** How the training reports and checkpoints (trainClassifier's context), and what only this call needs. */
  options: Omit<TrainContext, 'labeled' | 'unlabeled'> & {
    recipeFile?: string;
    /** With `featureKey`: test features of the frozen backbone, reused when the training only touched the head. */
    featureCache?: FeatureCache;
    featureKey?: string;
  } = {},
): Promise<FinetuneOutcome> {
  const started = Date.now();
  const trainOptions = trainOptionsOf(recipe, input, options.recipeFile);
  const classNames = data.train.classNames;
  const classifier = new Classifier(
    backbone,
    { input, classNames, hidden: recipe.head.hidden },
    createRng(recipe.seed).derive('head'),
  );
  try {
    const k = classNames.length;
    let review: LabelReview | undefined;
    let flippedPrecisionAtK: number | undefined;
    if (recipe.labelProblems.enabled && data.train.count >= 4) {
      // Features of the backbone as given (before finetuning can memorise wrong labels).
      const features = classifier.extractFeatures(data.train, recipe.eval.batchSize);
      const dim = backbone.featureDim;
      const knn = knnLabelDistribution(features, dim, data.train.labels, k, recipe.labelProblems.k);
      const folds = Math.min(
        recipe.labelProblems.folds,
        Math.max(2, Math.min(...countsOf(data.train.labels, k).filter((c) => c > 0))),
      );
      const oof = outOfFoldProbabilities(features, dim, data.train.labels, k, folds, recipe.seed);
      review = rankSuspiciousLabels(data.train.labels, k, { knn, classifier: oof });
      if (data.flipped) {
        const flipped = data.flipped;
        const count = flipped.reduce((a, b) => a + b, 0);
        flippedPrecisionAtK = precisionAtK(review.order, (p) => flipped[p] === 1, count);
      }
    }
    const training = await trainClassifier(classifier, trainOptions, {
      labeled: data.train,
      unlabeled: trainOptions.fixmatch ? data.unlabeled : undefined,
      progress: options.progress,
      onEpoch: options.onEpoch,
      onStep: options.onStep,
      runDir: options.runDir,
      resume: options.resume,
      onNote: options.onNote,
    });
    let probabilities: Float32Array;
    const { featureCache, featureKey } = options;
    if (training.precomputedFeatures && featureCache && featureKey) {
      // The backbone did not change: its test features are the same as in any other head-only run.
      let testFeatures = featureCache.get(featureKey);
      if (!testFeatures) {
        testFeatures = classifier.extractFeatures(data.test, recipe.eval.batchSize);
        featureCache.set(featureKey, testFeatures);
      }
      probabilities = classifier.probabilitiesFromFeatures(testFeatures);
    } else {
      probabilities = classifier.predictProbabilities(data.test, recipe.eval.batchSize);
    }
    const evaluation = evaluateProbabilities(probabilities, data.test.labels, classNames, recipe.eval.calibrationBins);
    return {
      classifier,
      training,
      evaluation,
      review,
      imbalance: imbalanceSummary(data.train.labels, classNames),
      flippedPrecisionAtK,
      seconds: (Date.now() - started) / 1000,
    };
  } catch (e) {
    classifier.dispose();
    throw e;
  }
}

function countsOf(labels: Int32Array, k: number): number[] {
  const c = new Array<number>(k).fill(0);
  for (const y of labels) if (y >= 0) c[y]++;
  return c;
}

/** Opens a backbone (a run, an export, a .safetensors file), or a randomly initialised one of the same config. */
export async function openBackbone(
  target: string,
  fromScratch = false,
  seed = 0,
): Promise<{ backbone: Backbone; manifest: BackboneManifest }> {
  const loaded = await loadBackbone(target);
  if (!fromScratch) return { backbone: loaded.backbone, manifest: loaded.manifest };
  const config = loaded.backbone.config;
  loaded.backbone.dispose();
  const backbone = createBackbone(config.arch, { ...config, seed: `scratch-${seed}` });
  return { backbone, manifest: { ...loaded.manifest, pretextTask: 'random-init' } };
}

export interface FinetuneJob extends DataSpec {
  recipe: FinetuneRecipe;
  recipeFile?: string;
  backbone: string;
  /** Same architecture as `backbone`, random initialisation (the baseline). */
  fromScratch?: boolean;
  out: string;
  /** Replace an earlier finetune output in `out` (only the files selfsup wrote). */
  overwrite?: boolean;
  subsets?: SubsetOptions;
  progress?: boolean;
  onEpoch?: (m: EpochMetrics) => void;
  onStep?: (row: MetricsRow) => void;
  /** Continue the interrupted run whose checkpoints are in `<out>.training/`. */
  resume?: boolean;
  /** After each self-training student round (recipe selfTraining.rounds). */
  onRound?: (round: SelfTrainingRound) => void;
  /** Told when the recipe's input disagrees with the backbone's recorded preprocessing. */
  onWarning?: (message: string) => void;
  /** Status lines: which training step and forward pass run, and why. */
  onNote?: (line: string) => void;
}

/** Where a finetune writing `out` keeps its checkpoints while it trains. */
export function trainingDirOf(out: string): string {
  return `${out.replace(/[\\/]+$/, '')}.training`;
}

/**
 * Makes the training folder of `job` ready: new (refusing to overwrite an
 * interrupted run unless resuming), or, on resume, checked against the recipe
 * and inputs it was started with.
 */
async function prepareTrainingDir(job: FinetuneJob): Promise<string> {
  const dir = trainingDirOf(job.out);
  const inputs = {
    recipe: job.recipe,
    backbone: path.resolve(job.backbone),
    fromScratch: Boolean(job.fromScratch),
    labels: path.resolve(job.labels),
    test: job.test ? path.resolve(job.test) : null,
    unlabeled: job.unlabeled ? path.resolve(job.unlabeled) : null,
    limits: { unlabeled: job.unlabeledLimit ?? null, test: job.testLimit ?? null },
    subsets: job.subsets ?? {},
  };
  const file = path.join(dir, 'run.json');
  if (job.resume) {
    if (!existsSync(file)) {
      throw new UsageError(
        `nothing to resume: ${dir} does not exist (it holds an unfinished finetune of ${job.out}; a finished one leaves only ${job.out})`,
      );
    }
    const saved = JSON.parse(await fsp.readFile(file, 'utf8'));
    const changed = differingKeys(saved, JSON.parse(JSON.stringify(inputs))).filter((k) => k !== 'recipe.name');
    if (changed.length) {
      throw new UsageError(
        `cannot resume ${dir} with different settings: ${changed.join(', ')} changed (resume with the same recipe, backbone and data)`,
      );
    }
    return dir;
  }
  if (existsSync(dir)) {
    throw new UsageError(
      `${dir} holds an unfinished finetune of ${job.out}: pass --resume to continue it, or remove ${dir} to start over`,
    );
  }
  await fsp.mkdir(dir, { recursive: true });
  await writeFileAtomic(
    path.join(dir, 'recipe.resolved.yaml'),
    stringifyRecipe(job.recipe, 'Fully resolved recipe of this finetune. Written by selfsup finetune.'),
  );
  await writeFileAtomic(file, `${JSON.stringify(inputs, null, 2)}\n`);
  return dir;
}

export interface FinetuneSummary {
  out: string;
  name: string | null;
  accuracy: number;
  macroF1: number;
  ece: number;
  evaluatedOn: PreparedData['testSource'];
  trainImages: number;
  testImages: number;
  unlabeledImages: number;
  skippedImages: number;
  epochs: number;
  finalLoss: number;
  maskRate?: number;
  pseudoLabelAccuracy?: number;
  flippedPrecisionAtK?: number;
  imbalanceRatio: number;
  seconds: number;
  /** Self-training: round 0's accuracy and each student round (pseudo-labels, their accuracy, the student's accuracy). */
  selfTraining?: { firstAccuracy: number; rounds: SelfTrainingRound[] };
  /** Which training step the stages used and why (`compiled graph, bfloat16 (...)`, `eager step, float32 (...)`). */
  trainingStep: string;
}

/** The whole `selfsup finetune` job; returns the headline numbers. */
export async function runFinetune(job: FinetuneJob): Promise<FinetuneSummary> {
  const { recipe } = job;
  const output = finetuneOutput(job);
  checkOutputDir(job.out, output);
  const { backbone, manifest } = await openBackbone(job.backbone, job.fromScratch, recipe.seed);
  let outcome: FinetuneOutcome | undefined;
  let selfTraining: SelfTrainingOutcome | undefined;
  // Until finetuneOnData takes it over (its classifier owns and disposes it), the backbone is ours.
  let backboneOwned = true;
  try {
    const input = resolveInput(recipe, backbone.config.inputChannels, manifest);
    if (!job.fromScratch) for (const message of preprocessingMismatches(recipe, manifest)) job.onWarning?.(message);
    trainOptionsOf(recipe, input, job.recipeFile); // check views before decoding anything
    const data = await prepareData(job, input, recipe, job.subsets, {
      progress: job.progress,
      needUnlabeled: recipe.fixmatch.enabled || recipe.selfTraining.rounds > 0,
    });
    const trainingDir = await prepareTrainingDir(job);
    backboneOwned = false;
    try {
      const trainOptions = {
        progress: job.progress,
        onEpoch: job.onEpoch,
        onStep: job.onStep,
        recipeFile: job.recipeFile,
        runDir: trainingDir,
        resume: job.resume,
        onNote: job.onNote,
      };
      if (recipe.selfTraining.rounds > 0) {
        // Round 0 takes the backbone opened above; each student starts from a new copy of it.
        let first: Backbone | undefined = backbone;
        const makeBackbone = async () => {
          const next = first ?? (await openBackbone(job.backbone, job.fromScratch, recipe.seed)).backbone;
          first = undefined;
          return next;
        };
        selfTraining = await selfTrainOnData(makeBackbone, input, recipe, data, {
          ...trainOptions,
          onRound: job.onRound,
        });
        outcome = selfTraining;
      } else outcome = await finetuneOnData(backbone, input, recipe, data, trainOptions);
    } catch (e) {
      // Nothing worth resuming (no checkpoint yet): leave no folder that would block the next run.
      if (!existsSync(path.join(trainingDir, 'checkpoints', 'last')) && !existsSync(path.join(trainingDir, 'round-0')))
        await fsp.rm(trainingDir, { recursive: true, force: true });
      throw e;
    }
    const o = outcome;
    const last = o.training.history[o.training.history.length - 1];
    const summary: FinetuneSummary = {
      out: job.out,
      name: recipe.name,
      accuracy: o.evaluation.metrics.accuracy,
      macroF1: o.evaluation.metrics.macroF1,
      ece: o.evaluation.calibration.ece,
      evaluatedOn: data.testSource,
      trainImages: data.train.count,
      testImages: data.test.count,
      unlabeledImages: data.unlabeled?.count ?? 0,
      skippedImages: data.skipped.length,
      epochs: o.training.history.length,
      finalLoss: last?.loss ?? Number.NaN,
      maskRate: last?.maskRate,
      pseudoLabelAccuracy: last?.pseudoLabelAccuracy,
      flippedPrecisionAtK: o.flippedPrecisionAtK,
      imbalanceRatio: o.imbalance.imbalanceRatio,
      seconds: o.seconds,
      trainingStep: o.training.trainingStep,
      ...(selfTraining
        ? { selfTraining: { firstAccuracy: selfTraining.firstAccuracy, rounds: selfTraining.rounds } }
        : {}),
    };
    const info = {
      recipe,
      backbone: { source: job.backbone, fromScratch: Boolean(job.fromScratch), pretextTask: manifest.pretextTask },
      data: {
        labels: job.labels,
        test: job.test ?? null,
        unlabeled: job.unlabeled ?? null,
        subsets: job.subsets ?? {},
      },
      summary,
    };
    await saveClassifier(o.classifier, job.out, info, {
      output,
      fill: async (dir) => {
        await writeFileAtomic(path.join(dir, 'recipe.yaml'), YAML.stringify(recipe, { lineWidth: 0 }));
        await writeFileAtomic(path.join(dir, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
        await writeFileAtomic(path.join(dir, 'imbalance.json'), `${JSON.stringify(o.imbalance, null, 2)}\n`);
        if (data.skipped.length)
          await writeFileAtomic(path.join(dir, 'skipped.json'), `${JSON.stringify(data.skipped, null, 2)}\n`);
        await writeHistory(path.join(dir, 'history.arrow'), o.training.history);
        await o.training.metrics.writeArrow(path.join(dir, 'metrics.arrow'));
        await writeCurves(path.join(dir, 'curves.png'), o.training.metrics, `finetune ${recipe.name ?? ''}`.trim());
        const reportDir = path.join(dir, 'report');
        await writeEvaluationFiles(reportDir, o.evaluation, {
          title: `${recipe.name ?? 'finetune'} on ${data.testSource} (${data.test.count} images)`,
          describe: (i) => data.test.describe(i),
          indices: data.test.sourceIndices,
          extra: { evaluatedOn: data.testSource, model: job.out },
        });
        if (o.review) {
          const flipped = data.flipped;
          await writeLabelReview(
            path.join(dir, 'label-review.arrow'),
            o.review,
            data.train.labels,
            data.train.classNames,
            (p) => data.train.describe(p),
            data.train.sourceIndices,
            flipped ? { flippedPrecisionAtK: String(o.flippedPrecisionAtK) } : {},
          );
        }
      },
    });
    await fsp.rm(trainingDirOf(job.out), { recursive: true, force: true });
    return summary;
  } finally {
    if (outcome) outcome.classifier.dispose();
    else if (backboneOwned) backbone.dispose();
  }
}

/** The files and folders a finetuning job reads, which its output may not overlap. */
export function finetuneInputs(job: { backbone: string; labels: string; test?: string; unlabeled?: string }) {
  return namedInputs({
    '--backbone': job.backbone,
    '--labels': job.labels,
    '--test': job.test,
    '--unlabeled': job.unlabeled,
  });
}

/** Where a finetune job may write: a finetune output folder that overlaps none of its inputs. */
function finetuneOutput(job: FinetuneJob): OutputDirOptions {
  return { kind: 'finetune', overwrite: job.overwrite, inputs: finetuneInputs(job) };
}

/** Per-epoch metrics as an Arrow table. */
export async function writeHistory(file: string, history: EpochMetrics[]): Promise<void> {
  const col = (f: (m: EpochMetrics) => number | undefined) => Float64Array.from(history, (m) => f(m) ?? Number.NaN);
  await writeArrowTable(file, {
    epoch: Int32Array.from(history, (m) => m.epoch),
    stage: Int32Array.from(history, (m) => m.stage),
    loss: col((m) => m.loss),
    supervised_loss: col((m) => m.supervisedLoss),
    unlabeled_loss: col((m) => m.unlabeledLoss),
    auxiliary_loss: col((m) => m.auxiliaryLoss),
    train_accuracy: col((m) => m.trainAccuracy),
    learning_rate: col((m) => m.learningRate),
    mask_rate: col((m) => m.maskRate),
    pseudo_label_accuracy: col((m) => m.pseudoLabelAccuracy),
    seconds: col((m) => m.seconds),
  });
}
