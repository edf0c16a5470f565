/**
 * Self-training rounds (pseudo-labelling; Lee, 2013, "Pseudo-Label: The Simple and
 * Efficient Semi-Supervised Learning Method for Deep Neural Networks"; in rounds with
 * a new student each time as in Xie et al., 2020, "Self-training with Noisy Student
 * improves ImageNet classification": "we first train a teacher model on labeled
 * images, then use the teacher to generate pseudo labels on unlabeled images, ...
 * then train a student model on the combination of labeled images and pseudo
 * labeled images ... we iterate this process by putting back the student as a teacher").
 *
 * Round 0 finetunes by the recipe (FixMatch too, when the recipe turns it on; the students
 * too unless `selfTraining.studentFixmatch` is false). Each
 * further round: the last model predicts the unlabeled images (evaluation view, no
 * augmentation); those it predicts with at least `threshold` confidence — at most
 * `maxPerClass` per predicted class, most confident first — join the labeled images
 * with their predicted labels, and the labeled images repeated to make up about
 * `labeledShare` of the set; a new classifier from the same starting backbone
 * trains on that set by the same recipe (its augmentation is the student's noise).
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { Backbone } from '../backbones/types.js';
import type { FinetuneRecipe } from '../recipes/finetune-schema.js';
import { invalidOption, UsageError } from '../util/errors.js';
import { concatImageSets, type ImageSet, subsetImageSet, withLabels } from './image-set.js';
import { argmaxAccuracy } from './metrics.js';
import type { InputSpec, PreparedData } from './prepare-data.js';
import { type FinetuneOutcome, finetuneOnData } from './run.js';

export interface SelfTrainingOptions {
  /** Student rounds after round 0 (0 = plain finetuning). */
  rounds: number;
  /** Keep a pseudo-label when the teacher's probability is at least this. */
  threshold: number;
  /** At most this many per predicted class, most confident first (null = no cap). */
  maxPerClass: number | null;
  /** Labeled images are repeated to make up about this share of the student's set (0 = once). */
  labeledShare: number;
  /** Whether the students run FixMatch too when the recipe does (false: supervised students of a FixMatch teacher). */
  studentFixmatch: boolean;
}

export interface PseudoLabelPick {
  /** Positions in the unlabeled set, ascending. */
  positions: Int32Array;
  /** The teacher's label of each picked position. */
  labels: Int32Array;
}

/**
 * The confident predictions among teacher probabilities `probs` ([N * K], row-major):
 * probability >= threshold, at most `maxPerClass` per predicted class (the most
 * confident first; ties by position). Pure.
 */
export function pickPseudoLabels(
  probs: ArrayLike<number>,
  numClasses: number,
  options: Pick<SelfTrainingOptions, 'threshold' | 'maxPerClass'>,
): PseudoLabelPick {
  const k = numClasses;
  const n = probs.length / k;
  if (!Number.isInteger(n)) throw invalidOption('probs', `a length that is a multiple of ${k}`, probs.length);
  const byClass: Array<Array<{ position: number; confidence: number }>> = Array.from({ length: k }, () => []);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let c = 1; c < k; c++) if (probs[i * k + c] > probs[i * k + best]) best = c;
    const confidence = probs[i * k + best];
    if (confidence >= options.threshold) byClass[best].push({ position: i, confidence });
  }
  const picked: Array<{ position: number; label: number }> = [];
  byClass.forEach((members, label) => {
    members.sort((a, b) => b.confidence - a.confidence || a.position - b.position);
    const kept = options.maxPerClass === null ? members : members.slice(0, options.maxPerClass);
    for (const m of kept) picked.push({ position: m.position, label });
  });
  picked.sort((a, b) => a.position - b.position);
  return {
    positions: Int32Array.from(picked, (p) => p.position),
    labels: Int32Array.from(picked, (p) => p.label),
  };
}

/**
 * The labeled set repeated `copies = round(share / (1 - share) x others / count)` times (at least
 * once), so that it makes up about `share` of a training set with `others` more images.
 */
export function repeatLabeled(labeled: ImageSet, others: number, share: number): ImageSet {
  if (!(share >= 0 && share < 1)) throw invalidOption('selfTraining.labeledShare', 'a number in [0, 1)', share);
  const copies = Math.max(1, Math.round(((share / (1 - share)) * others) / Math.max(1, labeled.count)));
  if (copies === 1) return labeled;
  const positions = Int32Array.from({ length: copies * labeled.count }, (_, i) => i % labeled.count);
  return subsetImageSet(labeled, positions);
}

export interface SelfTrainingRound {
  /** 1 for the first student. */
  round: number;
  /** Pseudo-labeled images the student trained on (besides the labeled ones). */
  pseudoLabeled: number;
  /** pseudoLabeled / unlabeled images. */
  coverage: number;
  /** Share of the picked pseudo-labels that match the hidden labels (when the unlabeled set has them). */
  pseudoLabelAccuracy?: number;
  /** The teacher's accuracy on every unlabeled image with a hidden label. */
  teacherUnlabeledAccuracy?: number;
  /** The teacher's accuracy on the evaluation set (round 1: the plain finetune's). */
  teacherAccuracy: number;
  /** The teacher's accuracy on the validation set given as `options.validation` (to keep or drop a student by). */
  teacherValAccuracy?: number;
  /** The student's accuracy on the evaluation set. */
  accuracy: number;
  seconds: number;
}

export interface SelfTrainingOutcome extends FinetuneOutcome {
  /** Round 0's accuracy on the evaluation set, then one entry per student round. */
  firstAccuracy: number;
  rounds: SelfTrainingRound[];
}

/**
 * Round 0 and `recipe.selfTraining.rounds` student rounds on `data.unlabeled`.
 * `makeBackbone` gives a new copy of the starting backbone for each round. The
 * returned classifier is the last student's (dispose it when done).
 */
export async function selfTrainOnData(
  makeBackbone: () => Promise<Backbone>,
  input: InputSpec,
  recipe: FinetuneRecipe,
  data: PreparedData,
  options: Parameters<typeof finetuneOnData>[4] & {
    onRound?: (round: SelfTrainingRound) => void;
    /** A labeled set outside training and evaluation: each round reports its teacher's accuracy on it. */
    validation?: ImageSet;
  } = {},
): Promise<SelfTrainingOutcome> {
  const { onRound, validation, ...finetuneOptions } = options;
  const unlabeled = data.unlabeled;
  if (!unlabeled || unlabeled.count === 0) {
    throw new UsageError('self-training needs an unlabeled set (--unlabeled) with at least one image');
  }
  const started = Date.now();
  // With a run folder, each round checkpoints in its own subfolder; on resume, a finished round
  // restores its last checkpoint (the end of its training) and the next one continues.
  const roundOptions = async (round: number) => {
    if (!finetuneOptions.runDir) return finetuneOptions;
    const runDir = path.join(finetuneOptions.runDir, `round-${round}`);
    await fsp.mkdir(runDir, { recursive: true });
    return { ...finetuneOptions, runDir };
  };
  let outcome = await finetuneOnData(await makeBackbone(), input, recipe, data, await roundOptions(0));
  const firstAccuracy = outcome.evaluation.metrics.accuracy;
  const rounds: SelfTrainingRound[] = [];
  const k = data.train.classNames.length;
  // Students train on a set the label review was never meant for (thousands of pseudo-labels).
  // With studentFixmatch false, FixMatch teaches round 0 only; the students learn from its pseudo-labels alone.
  const studentRecipe: FinetuneRecipe = {
    ...recipe,
    labelProblems: { ...recipe.labelProblems, enabled: false },
    fixmatch: { ...recipe.fixmatch, enabled: recipe.fixmatch.enabled && recipe.selfTraining.studentFixmatch !== false },
  };
  for (let round = 1; round <= recipe.selfTraining.rounds; round++) {
    const roundStart = Date.now();
    const teacherAccuracy = outcome.evaluation.metrics.accuracy;
    const probs = outcome.classifier.predictProbabilities(unlabeled, recipe.eval.batchSize);
    const pick = pickPseudoLabels(probs, k, recipe.selfTraining);
    let right = 0;
    let checked = 0;
    pick.positions.forEach((p, i) => {
      if (unlabeled.labels[p] < 0) return;
      checked++;
      if (unlabeled.labels[p] === pick.labels[i]) right++;
    });
    const teacherUnlabeledAccuracy = argmaxAccuracy(probs, unlabeled.labels, k);
    const teacherValAccuracy = validation
      ? argmaxAccuracy(outcome.classifier.predictProbabilities(validation, recipe.eval.batchSize), validation.labels, k)
      : Number.NaN;
    outcome.classifier.dispose();
    // The unlabeled set may carry no class names (a plain folder): the pseudo-labels are the labeled set's classes.
    const pseudo = {
      ...withLabels(subsetImageSet(unlabeled, pick.positions), pick.labels),
      classNames: data.train.classNames,
    };
    const train = concatImageSets(repeatLabeled(data.train, pseudo.count, recipe.selfTraining.labeledShare), pseudo);
    outcome = await finetuneOnData(
      await makeBackbone(),
      input,
      studentRecipe,
      { ...data, train },
      await roundOptions(round),
    );
    const entry: SelfTrainingRound = {
      round,
      pseudoLabeled: pick.positions.length,
      coverage: pick.positions.length / unlabeled.count,
      pseudoLabelAccuracy: checked > 0 ? right / checked : undefined,
      teacherUnlabeledAccuracy: Number.isNaN(teacherUnlabeledAccuracy) ? undefined : teacherUnlabeledAccuracy,
      teacherValAccuracy: Number.isNaN(teacherValAccuracy) ? undefined : teacherValAccuracy,
      teacherAccuracy,
      accuracy: outcome.evaluation.metrics.accuracy,
      seconds: (Date.now() - roundStart) / 1000,
    };
    rounds.push(entry);
    onRound?.(entry);
  }
  return { ...outcome, firstAccuracy, rounds, seconds: (Date.now() - started) / 1000 };
}
