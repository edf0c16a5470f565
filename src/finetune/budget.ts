/**
 * The label-budget study (`selfsup budget`): for N labels per class and several
 * seeds, finetune by the same recipe from a random initialisation ("scratch"),
 * from the pretrained backbone ("pretrained"), and optionally from the
 * pretrained backbone with FixMatch on unlabeled images ("pretrained+fixmatch"),
 * and from other weights ("init:<weights>": imported ImageNet weights, a
 * continued pretraining, anything --backbone accepts); evaluate each on the
 * same test set. Output: every run (Arrow), mean, spread and cost in minutes
 * per (arm, N) (Arrow + Markdown), the label subsets drawn (JSON), and a bar
 * chart with error bars.
 *
 * With `valPerClass`, a validation split of the labeled pool is held out first
 * (stratified, seeded, never in a label subset nor in the unlabeled images) and
 * every run is also evaluated on it: recipes are chosen on it, not on the test set.
 */
import os from 'node:os';
import path from 'node:path';
import type { FinetuneRecipe } from '../recipes/finetune-schema.js';
import { barChartSvg, writePng } from '../report/plot.js';
import { rowColumns, writeArrowTable } from '../util/arrow.js';
import { writeFileAtomic } from '../util/atomic.js';
import { invalidOption, UsageError } from '../util/errors.js';
import { checkOutputDir, type OutputDirOptions, writeOutputDir } from '../util/output-dir.js';
import { createRng, type Rng } from '../util/rng.js';
import { perClassSubset } from './data.js';
import { type ImageSet, subsetImageSet } from './image-set.js';
import { argmaxAccuracy } from './metrics.js';
import { preprocessingMismatches, resolveInput } from './recipe.js';
import {
  type DataSpec,
  type FeatureCache,
  finetuneInputs,
  finetuneOnData,
  openBackbone,
  type PreparedData,
  prepareData,
} from './run.js';
import { type SelfTrainingOutcome, selfTrainOnData } from './self-training.js';
import type { EpochMetrics } from './train.js';

export const BUDGET_ARMS = [
  'scratch',
  'pretrained',
  'pretrained+fixmatch',
  'pretrained+self-training',
  'pretrained+fixmatch+self-training',
] as const;
/** A named arm, or `init:<weights>`: finetune like `pretrained` but from those weights. */
export type BudgetArm = (typeof BUDGET_ARMS)[number] | `init:${string}`;

/** The weights of an `init:<weights>` arm, or undefined for the named arms. */
export function initWeightsOf(arm: string): string | undefined {
  return arm.startsWith('init:') ? arm.slice('init:'.length) : undefined;
}

/** Checks an --arms entry; the error lists what is allowed. */
export function checkBudgetArm(arm: string): BudgetArm {
  if ((BUDGET_ARMS as readonly string[]).includes(arm) || (initWeightsOf(arm) ?? '') !== '') return arm as BudgetArm;
  throw invalidOption('--arms', `names from ${BUDGET_ARMS.join(', ')} or init:<weights>`, arm);
}

/**
 * A line every tenth of a long run's epochs (20 or more, the probe's not counted), so a study
 * of FixMatch runs that take minutes each shows it is moving: epoch, loss, and FixMatch's
 * mask rate and pseudo-label accuracy when it has them. `selfsup fewshot` prints its finetune's
 * progress with it too (src/demo/fewshot.ts).
 */
export function progressOf(
  label: string,
  recipe: FinetuneRecipe,
  options: Pick<BudgetOptions, 'progress' | 'log'>,
): ((m: EpochMetrics) => void) | undefined {
  const total = recipe.stages.reduce((sum, stage) => sum + stage.epochs, 0);
  if (!options.progress || !options.log || total < 20) return undefined;
  const every = Math.ceil(total / 10);
  let done = 0;
  const started = Date.now();
  return (m) => {
    if (m.stage < 0) return;
    done += 1;
    // A self-training arm runs the recipe once per round: count each round's epochs from 1.
    const epoch = ((done - 1) % total) + 1;
    if (epoch % every !== 0 && epoch !== total) return;
    const parts = [`${label}: epoch ${epoch}/${total}, loss ${m.loss.toFixed(3)}`];
    if (m.maskRate !== undefined && Number.isFinite(m.maskRate)) {
      parts.push(`mask rate ${(100 * m.maskRate).toFixed(0)}%`);
    }
    if (m.pseudoLabelAccuracy !== undefined && Number.isFinite(m.pseudoLabelAccuracy)) {
      parts.push(`pseudo-labels ${(100 * m.pseudoLabelAccuracy).toFixed(1)}% right`);
    }
    if (m.auxiliaryLoss !== undefined) parts.push(`auxiliary loss ${m.auxiliaryLoss.toFixed(3)}`);
    parts.push(`${((Date.now() - started) / 60000).toFixed(1)} min`);
    options.log?.(parts.join(', '));
  };
}

/** The study's data are a finetune's (`unlabeled`: for the FixMatch arm; default: the labeled pool, labels hidden). */
export interface BudgetOptions extends DataSpec {
  recipe: FinetuneRecipe;
  recipeFile?: string;
  backbone: string;
  perClass: number[];
  seeds: number[];
  arms: BudgetArm[];
  /**
   * Hold out this many images per class of `labels` as a validation split before the label
   * subsets are drawn; every run reports its accuracy on them. Without `test`, they are the
   * only evaluation (the recipe's eval.holdout is not used).
   */
  valPerClass?: number;
  out: string;
  /** Replace an earlier budget study in `out` (only the files selfsup wrote). */
  overwrite?: boolean;
  progress?: boolean;
  /** One line per finished run. */
  log?: (line: string) => void;
}

export interface BudgetRow {
  arm: BudgetArm;
  perClass: number;
  seed: number;
  trainImages: number;
  /** Epochs run, the recipe's linear probe included (the scratch arm skips it). */
  epochs: number;
  accuracy: number;
  /** Accuracy on the validation split (NaN without one). */
  valAccuracy: number;
  macroF1: number;
  ece: number;
  maskRate: number;
  pseudoLabelAccuracy: number;
  /** Wall seconds of the run: training and the test evaluation. */
  seconds: number;
}

export interface BudgetCell {
  arm: BudgetArm;
  perClass: number;
  runs: number;
  accuracyMean: number;
  accuracyStd: number;
  macroF1Mean: number;
  macroF1Std: number;
  /** NaN without a validation split. */
  valAccuracyMean: number;
  valAccuracyStd: number;
  /** Mean wall minutes per run, and the sum over the runs. */
  minutesMean: number;
  minutesTotal: number;
}

/** The label subsets a study drew: source indices into --labels, for other tools to reuse. */
export interface BudgetSubsets {
  labels: string;
  /** Source indices of the validation split (empty without one). */
  validation: number[];
  subsets: Array<{ perClass: number; seed: number; indices: number[] }>;
}

export interface BudgetResult {
  rows: BudgetRow[];
  cells: BudgetCell[];
  testImages: number;
  valImages: number;
  evaluatedOn: PreparedData['testSource'];
  /** What was evaluated, with which recipe, and what the study cost (the line under the table). */
  note: string;
  out: string;
}

function meanStd(values: number[]): [number, number] {
  const m = values.reduce((a, b) => a + b, 0) / Math.max(1, values.length);
  const v = values.length > 1 ? values.reduce((a, b) => a + (b - m) ** 2, 0) / (values.length - 1) : 0;
  return [m, Math.sqrt(v)];
}

/** Mean and sample standard deviation per (arm, N). */
export function summariseBudget(rows: BudgetRow[]): BudgetCell[] {
  const cells: BudgetCell[] = [];
  const arms = [...new Set(rows.map((r) => r.arm))];
  const sizes = [...new Set(rows.map((r) => r.perClass))].sort((a, b) => a - b);
  for (const perClass of sizes) {
    for (const arm of arms) {
      const group = rows.filter((r) => r.arm === arm && r.perClass === perClass);
      if (group.length === 0) continue;
      const [accuracyMean, accuracyStd] = meanStd(group.map((r) => r.accuracy));
      const [macroF1Mean, macroF1Std] = meanStd(group.map((r) => r.macroF1));
      const [valAccuracyMean, valAccuracyStd] = meanStd(group.map((r) => r.valAccuracy));
      const minutes = group.map((r) => r.seconds / 60);
      cells.push({
        arm,
        perClass,
        runs: group.length,
        accuracyMean,
        accuracyStd,
        macroF1Mean,
        macroF1Std,
        valAccuracyMean,
        valAccuracyStd,
        minutesMean: meanStd(minutes)[0],
        minutesTotal: minutes.reduce((a, b) => a + b, 0),
      });
    }
  }
  return cells;
}

/**
 * The Markdown table of a study: per label count and arm, accuracy and macro-F1
 * (mean ± std over seeds), validation accuracy when there is a split, and the
 * cost: mean wall minutes per run and their total.
 */
export function budgetMarkdown(cells: BudgetCell[], note = ''): string {
  const pct = (v: number) => (100 * v).toFixed(1);
  const withVal = cells.some((c) => !Number.isNaN(c.valAccuracyMean));
  const minutes = (v: number) => (v < 10 ? v.toFixed(2) : v.toFixed(1));
  const lines = [
    `| labels/class | arm | runs | accuracy % (mean ± std) |${withVal ? ' val accuracy % (mean ± std) |' : ''} macro-F1 (mean ± std) | minutes/run | minutes total |`,
    `|---:|---|---:|---:|${withVal ? '---:|' : ''}---:|---:|---:|`,
    ...cells.map(
      (c) =>
        `| ${c.perClass} | ${c.arm} | ${c.runs} | ${pct(c.accuracyMean)} ± ${pct(c.accuracyStd)} |` +
        (withVal ? ` ${pct(c.valAccuracyMean)} ± ${pct(c.valAccuracyStd)} |` : '') +
        ` ${c.macroF1Mean.toFixed(3)} ± ${c.macroF1Std.toFixed(3)} | ${minutes(c.minutesMean)} | ${minutes(c.minutesTotal)} |`,
    ),
  ];
  if (note) lines.push('', note);
  return `${lines.join('\n')}\n`;
}

/**
 * Splits `labels` (positions of a pool) into a stratified validation split of
 * `valPerClass` per class, drawn with `rng`, and the rest (both sorted).
 */
export function validationSplit(
  labels: Int32Array,
  numClasses: number,
  valPerClass: number,
  rng: Rng,
): { validation: Int32Array; rest: Int32Array } {
  const validation = perClassSubset(labels, numClasses, valPerClass, rng);
  const held = new Set(validation);
  const rest = Int32Array.from({ length: labels.length }, (_, i) => i).filter((i) => !held.has(i));
  return { validation, rest };
}

/** Runs the study and writes `<out>/{runs.arrow, summary.arrow, budget.md, budget.png, budget.json}`. */
export async function runBudget(options: BudgetOptions): Promise<BudgetResult> {
  if (options.perClass.length === 0)
    throw invalidOption('--per-class', 'a list of label counts per class', options.perClass);
  if (options.seeds.length === 0) throw invalidOption('--seeds', 'a list of seeds', options.seeds);
  const valPerClass = options.valPerClass ?? 0;
  if (!Number.isInteger(valPerClass) || valPerClass < 0)
    throw invalidOption('--val-per-class', 'an integer >= 1', options.valPerClass);
  const loadAtStart = os.loadavg()[0];
  const started = Date.now();
  for (const arm of options.arms) checkBudgetArm(arm);
  const output: OutputDirOptions = { kind: 'budget', overwrite: options.overwrite, inputs: finetuneInputs(options) };
  checkOutputDir(options.out, output);
  const recipe = options.recipe;
  const probe = await openBackbone(options.backbone);
  const input = resolveInput(recipe, probe.backbone.config.inputChannels, probe.manifest);
  for (const message of preprocessingMismatches(recipe, probe.manifest)) options.log?.(`warning: ${message}`);
  probe.backbone.dispose();
  // init:<weights> arms share the data as prepared for --backbone: same channels; other preprocessing warns.
  for (const weights of options.arms.map(initWeightsOf)) {
    if (weights === undefined) continue;
    const other = await openBackbone(weights);
    other.backbone.dispose();
    if (other.backbone.config.inputChannels !== input.channels) {
      throw new UsageError(
        `--arms init:${weights} takes ${other.backbone.config.inputChannels}-channel input but --backbone takes ${input.channels}`,
      );
    }
    for (const message of preprocessingMismatches(recipe, other.manifest)) {
      options.log?.(`warning: init:${weights}: ${message}`);
    }
    for (const key of ['mean', 'std'] as const) {
      if (other.manifest[key].some((v, i) => Math.abs(v - input[key][i]) > 1e-6)) {
        options.log?.(
          `warning: init:${weights} was trained with ${key} [${other.manifest[key].join(', ')}]; every arm uses [${input[key].join(', ')}] (from the recipe or --backbone)`,
        );
      }
    }
  }
  // Arms that use the unlabeled images: FixMatch, self-training, or both (round 0 with FixMatch).
  const usesFixMatch = (arm: BudgetArm) => arm === 'pretrained+fixmatch' || arm === 'pretrained+fixmatch+self-training';
  const usesSelfTraining = (arm: BudgetArm) => arm.endsWith('+self-training');
  const wantsFixMatch = options.arms.some((arm) => usesFixMatch(arm) || usesSelfTraining(arm));
  const data = await prepareData(
    {
      labels: options.labels,
      test: options.test,
      testLimit: options.testLimit,
      unlabeled: wantsFixMatch ? options.unlabeled : undefined,
      unlabeledLimit: options.unlabeledLimit,
    },
    input,
    {
      ...recipe,
      fixmatch: { ...recipe.fixmatch, enabled: false },
      // With a validation split and no --test, the split is the evaluation: no second holdout.
      eval: valPerClass > 0 && !options.test ? { ...recipe.eval, holdout: 0 } : recipe.eval,
    },
    {},
    { progress: options.progress },
  );
  const numClasses = data.train.classNames.length;
  // The pool the label subsets (and the default unlabeled images) come from: positions in data.train.
  let pool: Int32Array = Int32Array.from({ length: data.train.count }, (_, i) => i);
  let validation: ImageSet | undefined;
  if (valPerClass > 0) {
    const split = validationSplit(data.train.labels, numClasses, valPerClass, createRng('budget-validation'));
    validation = subsetImageSet(data.train, split.validation);
    pool = split.rest;
    if (!options.test) {
      data.test = validation;
      data.testSource = 'holdout';
    }
  }
  let unlabeled = data.unlabeled;
  if (wantsFixMatch && !unlabeled) {
    // FixMatch's own protocol: all training images serve as unlabeled data; labels stay hidden
    // from the loss and only measure pseudo-label accuracy. The validation split stays out.
    const limit = Math.min(options.unlabeledLimit ?? pool.length, pool.length);
    const order = createRng(recipe.seed).derive('budget-unlabeled').permutation(pool.length).subarray(0, limit);
    unlabeled = subsetImageSet(data.train, Int32Array.from(order, (j) => pool[j]).sort());
  }
  const poolLabels = Int32Array.from(pool, (p) => data.train.labels[p]);
  const rows: BudgetRow[] = [];
  const subsets: BudgetSubsets = {
    labels: options.labels,
    validation: Array.from(validation?.sourceIndices ?? []),
    subsets: [],
  };
  const featureCache: FeatureCache = new Map();
  // Which training step and forward pass the runs use: said once, and again only when a run differs.
  const noted = new Set<string>();
  const noteOnce = (line: string) => {
    if (noted.has(line)) return;
    noted.add(line);
    options.log?.(line);
  };
  for (const perClass of options.perClass) {
    for (const seed of options.seeds) {
      const drawn = perClassSubset(poolLabels, numClasses, perClass, createRng(seed).derive('budget', perClass));
      const train = subsetImageSet(
        data.train,
        Int32Array.from(drawn, (j) => pool[j]),
      );
      subsets.subsets.push({ perClass, seed, indices: Array.from(train.sourceIndices) });
      for (const arm of options.arms) {
        const armRecipe: FinetuneRecipe = {
          ...recipe,
          seed,
          // A randomly initialised backbone has nothing to preserve: it trains at the head's rate,
          // and it skips the recipe's linear probe (a head fitted to random features is no head
          // start: on Fashion-MNIST it cost the scratch arm 6.7 points at 100 labels/class).
          train: arm === 'scratch' ? { ...recipe.train, backboneLrMultiplier: 1 } : recipe.train,
          probe: arm === 'scratch' ? { ...recipe.probe, epochs: 0 } : recipe.probe,
          fixmatch: { ...recipe.fixmatch, enabled: usesFixMatch(arm) },
          // The self-training arms run the recipe's rounds (at least one); the others none.
          selfTraining: {
            ...recipe.selfTraining,
            rounds: usesSelfTraining(arm) ? Math.max(1, recipe.selfTraining.rounds) : 0,
          },
          labelProblems: { ...recipe.labelProblems, enabled: false },
        };
        const initWeights = initWeightsOf(arm);
        const armData = {
          ...data,
          train,
          unlabeled: usesFixMatch(arm) || usesSelfTraining(arm) ? unlabeled : undefined,
        };
        const finetuneOptions = {
          recipeFile: options.recipeFile,
          onNote: noteOnce,
          onEpoch: progressOf(`${arm} ${perClass}/class seed ${seed}`, armRecipe, options),
          featureCache,
          // A scratch backbone depends on the seed; the pretrained one does not.
          featureKey: arm === 'scratch' ? `scratch:${seed}` : initWeights !== undefined ? arm : 'pretrained',
        };
        const open = async () =>
          (await openBackbone(initWeights ?? options.backbone, arm === 'scratch', seed)).backbone;
        const outcome = usesSelfTraining(arm)
          ? await selfTrainOnData(open, input, armRecipe, armData, {
              ...finetuneOptions,
              // The report's test set may differ from the validation split: the teacher is judged on both.
              validation: validation && data.test !== validation ? validation : undefined,
              onRound: (r) =>
                options.log?.(
                  `${arm} ${perClass}/class seed ${seed} round ${r.round}: teacher accuracy ${(100 * r.teacherAccuracy).toFixed(1)}%${r.teacherValAccuracy === undefined ? '' : ` (val ${(100 * r.teacherValAccuracy).toFixed(1)}%)`}, ${r.pseudoLabeled} pseudo-labels (${(100 * r.coverage).toFixed(1)}% of the unlabeled images, ${r.pseudoLabelAccuracy === undefined ? 'accuracy unknown' : `${(100 * r.pseudoLabelAccuracy).toFixed(1)}% right`}), student accuracy ${(100 * r.accuracy).toFixed(1)}%`,
                ),
            })
          : await finetuneOnData(await open(), input, armRecipe, armData, finetuneOptions);
        const lastRound = 'rounds' in outcome ? (outcome as SelfTrainingOutcome).rounds.at(-1) : undefined;
        const last = outcome.training.history[outcome.training.history.length - 1];
        let valAccuracy = Number.NaN;
        if (validation) {
          valAccuracy =
            data.test === validation
              ? outcome.evaluation.metrics.accuracy
              : argmaxAccuracy(
                  outcome.classifier.predictProbabilities(validation, recipe.eval.batchSize),
                  validation.labels,
                  numClasses,
                );
        }
        const row: BudgetRow = {
          arm,
          perClass,
          seed,
          trainImages: train.count,
          epochs: outcome.training.history.length,
          accuracy: outcome.evaluation.metrics.accuracy,
          valAccuracy,
          macroF1: outcome.evaluation.metrics.macroF1,
          ece: outcome.evaluation.calibration.ece,
          // Self-training arms: the share of unlabeled images the last teacher pseudo-labeled, and how many were right.
          maskRate: lastRound?.coverage ?? last?.maskRate ?? Number.NaN,
          pseudoLabelAccuracy: lastRound?.pseudoLabelAccuracy ?? last?.pseudoLabelAccuracy ?? Number.NaN,
          seconds: outcome.seconds,
        };
        outcome.classifier.dispose();
        rows.push(row);
        options.log?.(
          `${arm.padEnd(20)} ${String(perClass).padStart(5)}/class seed ${seed}: accuracy ${(100 * row.accuracy).toFixed(1)}%${validation ? `, val ${(100 * valAccuracy).toFixed(1)}%` : ''}, macro-F1 ${row.macroF1.toFixed(3)} (${row.seconds.toFixed(0)} s)`,
        );
      }
    }
  }
  const cells = summariseBudget(rows);
  const minutes = (Date.now() - started) / 60000;
  const loadAtEnd = os.loadavg()[0];
  const note =
    `Evaluated on ${data.test.count} ${data.testSource} images` +
    (validation && data.test !== validation
      ? ` and ${validation.count} validation images (${valPerClass}/class of the labeled pool, in no label subset)`
      : '') +
    `; recipe ${options.recipeFile ?? recipe.name ?? ''}; seeds ${options.seeds.join(', ')}. ` +
    `Minutes are wall time per run (training and test evaluation); the whole study took ${minutes.toFixed(1)} min, ` +
    `1-minute load average ${loadAtStart.toFixed(2)} at the start and ${loadAtEnd.toFixed(2)} at the end on ${os.cpus().length} cores.`;
  await writeOutputDir(options.out, output, async (dir) => {
    await writeArrowTable(
      path.join(dir, 'runs.arrow'),
      rowColumns(
        rows,
        'arm:utf8 perClass:int32 seed:int32 trainImages:int32 epochs:int32 accuracy valAccuracy macroF1 ece maskRate pseudoLabelAccuracy seconds',
      ),
    );
    await writeArrowTable(
      path.join(dir, 'summary.arrow'),
      rowColumns(
        cells,
        'arm:utf8 perClass:int32 runs:int32 accuracyMean accuracyStd macroF1Mean macroF1Std valAccuracyMean valAccuracyStd minutesMean minutesTotal',
      ),
    );
    await writeFileAtomic(path.join(dir, 'subsets.json'), `${JSON.stringify(subsets)}\n`);
    await writeFileAtomic(path.join(dir, 'budget.md'), budgetMarkdown(cells, note));
    const cost = { minutes, loadAtStart, loadAtEnd, cores: os.cpus().length };
    await writeFileAtomic(path.join(dir, 'budget.json'), `${JSON.stringify({ rows, cells, note, cost }, null, 2)}\n`);
    const arms = [...new Set(rows.map((r) => r.arm))];
    const sizes = [...new Set(rows.map((r) => r.perClass))].sort((a, b) => a - b);
    const groups = sizes.map((n) => ({
      label: `${n} labels/class`,
      bars: arms.map((arm) => {
        const c = cells.find((x) => x.arm === arm && x.perClass === n);
        return { mean: 100 * (c?.accuracyMean ?? 0), spread: 100 * (c?.accuracyStd ?? 0) };
      }),
    }));
    await writePng(
      path.join(dir, 'budget.png'),
      barChartSvg(groups, arms, {
        title: 'Test accuracy by label budget (mean ± std over seeds)',
        yLabel: 'accuracy %',
      }),
    );
  });
  if (rows.length === 0) throw new UsageError('the study ran no configurations');
  return {
    rows,
    cells,
    testImages: data.test.count,
    valImages: validation?.count ?? 0,
    evaluatedOn: data.testSource,
    note,
    out: options.out,
  };
}
