/**
 * `selfsup finetune` as a library call: open the backbone and the data, train
 * the classifier by the recipe, evaluate it, rank suspicious labels, and write
 * the model folder (atomically):
 *
 * ```
 * <out>/classifier.json, classifier.safetensors, backbone/   the model (see model-io.ts)
 * <out>/recipe.yaml        the fully resolved recipe
 * <out>/history.arrow      per-epoch loss, accuracy, learning rate, FixMatch mask rate
 * <out>/report/            evaluation report (see evaluate.ts)
 * <out>/label-review.arrow training samples ranked by how likely their label is wrong
 * <out>/imbalance.json     class counts and imbalance summary
 * <out>/summary.json       headline numbers
 * ```
 */
import path from 'node:path';
import YAML from 'yaml';
import { createBackbone } from '../backbones/registry.js';
import type { Backbone } from '../backbones/types.js';
import { loadBackbone } from '../export/backbone-store.js';
import type { BackboneManifest } from '../export/manifest.js';
import { writeArrowTable } from '../util/arrow.js';
import { writeFileAtomic } from '../util/atomic.js';
import { createRng } from '../util/rng.js';

export { type DataSpec, type InputSpec, type PreparedData, prepareData, type SubsetOptions } from './prepare-data.js';

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
import { type FinetuneRecipe, resolveInput, trainOptionsOf } from './recipe.js';
import { type EpochMetrics, type TrainResult, trainClassifier } from './train.js';

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
  options: {
    progress?: boolean;
    onEpoch?: (m: EpochMetrics) => void;
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
  subsets?: SubsetOptions;
  progress?: boolean;
  onEpoch?: (m: EpochMetrics) => void;
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
}

/** The whole `selfsup finetune` job; returns the headline numbers. */
export async function runFinetune(job: FinetuneJob): Promise<FinetuneSummary> {
  const { recipe } = job;
  const { backbone, manifest } = await openBackbone(job.backbone, job.fromScratch, recipe.seed);
  let outcome: FinetuneOutcome | undefined;
  // Until finetuneOnData takes it over (its classifier owns and disposes it), the backbone is ours.
  let backboneOwned = true;
  try {
    const input = resolveInput(recipe, backbone.config.inputChannels, manifest);
    trainOptionsOf(recipe, input, job.recipeFile); // check views before decoding anything
    const data = await prepareData(job, input, recipe, job.subsets, {
      progress: job.progress,
      needUnlabeled: recipe.fixmatch.enabled,
    });
    backboneOwned = false;
    outcome = await finetuneOnData(backbone, input, recipe, data, {
      progress: job.progress,
      onEpoch: job.onEpoch,
      recipeFile: job.recipeFile,
    });
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
      fill: async (dir) => {
        await writeFileAtomic(path.join(dir, 'recipe.yaml'), YAML.stringify(recipe, { lineWidth: 0 }));
        await writeFileAtomic(path.join(dir, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
        await writeFileAtomic(path.join(dir, 'imbalance.json'), `${JSON.stringify(o.imbalance, null, 2)}\n`);
        if (data.skipped.length)
          await writeFileAtomic(path.join(dir, 'skipped.json'), `${JSON.stringify(data.skipped, null, 2)}\n`);
        await writeHistory(path.join(dir, 'history.arrow'), o.training.history);
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
    return summary;
  } finally {
    if (outcome) outcome.classifier.dispose();
    else if (backboneOwned) backbone.dispose();
  }
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
    train_accuracy: col((m) => m.trainAccuracy),
    learning_rate: col((m) => m.learningRate),
    mask_rate: col((m) => m.maskRate),
    pseudo_label_accuracy: col((m) => m.pseudoLabelAccuracy),
    seconds: col((m) => m.seconds),
  });
}
