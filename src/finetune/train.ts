/**
 * The finetuning loop: an optional linear probe (LP-FT), then stages of
 * (epochs, trainable parts) — e.g. head only, then layer4 + head, then
 * everything — with label-smoothed cross-entropy or focal loss, class weights,
 * class-balanced sampling, and optional FixMatch on an unlabeled set.
 *
 * It runs on the training engine of src/train: one optimizer for the whole run
 * (state kept per variable, so stages and the probe share it), parameter groups
 * (the backbone at `backboneLrMultiplier` x the head's rate; no weight decay on
 * BatchNorm and biases), the per-step schedule `learningRateAt`, the step
 * engine `lossAndGradients` (gradients clipped by global norm), the divergence
 * stop, and, with a run folder, atomic checkpoints, metrics.arrow and resume.
 *
 * Each step runs inside tf.tidy and awaits nothing; the only state across steps
 * is variables and optimizer slots (owned and disposed here).
 */
import * as tf from '@tensorflow/tfjs';
import type { AnyPretextTask } from '../../pretext-tasks/registry.js';
import { chooseInferencePath } from '../backbones/inference-graph.js';
import type { Head } from '../backbones/types.js';
import { evalView } from '../data/augment/presets.js';
import { augmentTensorBatch } from '../data/augment/tensor-batch.js';
import type { PipelineSpec } from '../data/types.js';
import type {
  CompileSetting,
  DivergenceLimits,
  OptimizerConfig,
  PrecisionSetting,
  ScheduleConfig,
} from '../recipes/optimizer-schema.js';
import type { CompiledStepResult } from '../train/compiled-step.js';
import { MetricsLog, type MetricsRow, summarizeEpoch } from '../train/metrics.js';
import { createOptimizer, type TrainableParam } from '../train/optimizers.js';
import { DivergenceError, divergence, lossAndGradients } from '../train/step.js';
import { chooseTrainingPath } from '../train/training-path.js';
import { WeightEma } from '../train/weight-ema.js';
import { UsageError } from '../util/errors.js';
import { yieldToEventLoop } from '../util/event-loop.js';
import { Progress } from '../util/progress.js';
import { createRng, type Rng } from '../util/rng.js';
import type { Classifier } from './classifier.js';
import { CompiledFinetuneStep, compiledFinetuneProblem } from './compiled-finetune.js';
import {
  featureMoments,
  firstLinearOf,
  foldStandardization,
  type Moments,
  standardize,
} from './feature-standardization.js';
import { FixMatchMeter, type FixMatchOptions, fixMatchTerms, pseudoLabelLoss, unlabeledWeight } from './fixmatch.js';
import { batchPixels, type ImageSet } from './image-set.js';
import {
  classCounts,
  crossEntropyLoss,
  effectiveNumberWeights,
  focalLossSoftmax,
  inverseFrequencyWeights,
} from './losses.js';
import { type Phase, planPhases } from './phases.js';
import {
  initialPseudoLabelState,
  labeledClassPrior,
  type PseudoLabelState,
  selectPseudoLabels,
  usesRunningStatistics,
} from './pseudo-labels.js';
import { classBalancedIndices, shuffledIndices } from './sampler.js';
import { FinetuneCheckpoints } from './train-checkpoints.js';

/** One stage: `epochs` epochs with the variables whose names start with one of `trainable` trained. */
export interface StageSpec {
  epochs: number;
  /** Name prefixes: `head`, `backbone` / `all`, or torchvision parts `conv1`, `bn1`, `layer1`..`layer4`. */
  trainable: string[];
}

export interface LossSpec {
  type: 'cross-entropy' | 'focal';
  labelSmoothing: number;
  /** Focal loss gamma. */
  gamma: number;
}

export interface TrainOptions {
  stages: StageSpec[];
  batchSize: number;
  /** Steps per epoch (default: one pass over the labeled images), e.g. to give every label budget the same compute. */
  stepsPerEpoch?: number;
  /** One optimizer for the run; `lr` is the head's peak learning rate. */
  optimizer: OptimizerConfig;
  /** Parameter groups: the backbone trains at optimizer.lr x this. */
  backboneLrMultiplier: number;
  /** Schedule of the stages, per step over all stage epochs. */
  schedule: ScheduleConfig;
  /** Clip gradients to this global L2 norm; 0 = no clipping. */
  gradClipNorm: number;
  /**
   * Decay of the moving average of the weights over the stages' steps (src/train/weight-ema.ts),
   * written into the classifier when training ends; 0 or unset = the last step's weights.
   */
  emaDecay?: number;
  divergence: DivergenceLimits;
  /** With a run folder (TrainContext.runDir): checkpoint every N stage epochs, keep the newest `keep`. */
  checkpoints: { everyEpochs: number; keep: number };
  loss: LossSpec;
  classWeighting: 'none' | 'inverse-frequency' | 'effective-number';
  effectiveNumberBeta: number;
  sampler: 'shuffle' | 'class-balanced';
  /** View for labeled training images ([] = the evaluation view, no augmentation). */
  trainView: PipelineSpec;
  /** FixMatch on `unlabeled` when set. */
  fixmatch?: FixMatchOptions & { weakView: PipelineSpec; strongView: PipelineSpec };
  /**
   * A linear probe before the stages (linear probing then finetuning, LP-FT; Kumar et al., 2022):
   * the head trains on features computed once from the un-augmented labeled images, with its own
   * cosine schedule and one pass over the labeled images per epoch; then the stages start from
   * that head. Off when unset or `epochs` is 0.
   */
  probe?: ProbeSpec;
  /** A pretext task trained alongside the classifier in the stages that train the backbone. */
  auxiliary?: AuxiliaryTask;
  seed: string | number;
  /**
   * The stages' training step as one compiled graph (compiled-finetune.ts): `auto` where it
   * can run, `on` (fail when it cannot), `off` (eager, the default). See src/train/training-path.ts.
   */
  compile?: CompileSetting;
  /** Precision of the compiled step and of the forward passes that follow it (default auto). */
  precision?: PrecisionSetting;
}

/**
 * A pretext task as a regulariser of the backbone during finetuning (S4L; ReMixMatch's rotation
 * loss): its loss on `images` images of each step, in its own `views`, is added with `weight`.
 */
export interface AuxiliaryTask {
  task: AnyPretextTask;
  /** The task's options, validated. */
  options: object;
  /** The task's views (`task.views(options, input)`), run by the tensor executor. */
  views: PipelineSpec[];
  weight: number;
  /** Images per step: the first of the step's unlabeled images with FixMatch, else of its labeled batch. */
  images: number;
}

export interface ProbeSpec {
  epochs: number;
  /** Peak learning rate of the probe (cosine to 0 over its epochs). */
  lr: number;
  batchSize: number;
}

export interface EpochMetrics {
  epoch: number;
  /** Index into `stages`; -1 for the epochs of the linear probe (`probe`). */
  stage: number;
  loss: number;
  supervisedLoss: number;
  unlabeledLoss?: number;
  /** Mean loss of the auxiliary pretext task (unweighted), when the recipe has one. */
  auxiliaryLoss?: number;
  trainAccuracy: number;
  learningRate: number;
  maskRate?: number;
  pseudoLabelAccuracy?: number;
  seconds: number;
}

export interface TrainResult {
  history: EpochMetrics[];
  /** Step and epoch rows (metrics.arrow, curves.png). */
  metrics: MetricsLog;
  /** Per-class weights used by the loss (undefined = none). */
  classWeights?: number[];
  /** Whether the stages trained the head on precomputed features only (the backbone did not change). */
  precomputedFeatures: boolean;
  /** FixMatch's running statistics at the end (alignment, self-adaptive thresholds); undefined without them. */
  pseudoLabelState?: PseudoLabelState;
  /** Which training step the stages used and why (`compiled graph, bfloat16 (...)`, `eager step, float32 (...)`). */
  trainingStep: string;
}

export interface TrainContext {
  labeled: ImageSet;
  unlabeled?: ImageSet;
  onEpoch?: (m: EpochMetrics) => void;
  /** After every step (e.g. to print progress or stop a test run). */
  onStep?: (row: MetricsRow) => void;
  progress?: boolean;
  /**
   * A folder for `checkpoints/`, `metrics.arrow` and `status.json`: the run can
   * then be continued after a crash with `resume`.
   */
  runDir?: string;
  /** Continue from the last checkpoint in `runDir` (none yet: start from the beginning). */
  resume?: boolean;
  /** Status lines: which training step and forward pass run, and why. */
  onNote?: (line: string) => void;
}

/** Per-class weights for the loss from the labeled set's counts. */
export function lossClassWeights(options: TrainOptions, labels: Int32Array, numClasses: number): number[] | undefined {
  if (options.classWeighting === 'none') return undefined;
  const counts = classCounts(labels, numClasses);
  return options.classWeighting === 'inverse-frequency'
    ? inverseFrequencyWeights(counts)
    : effectiveNumberWeights(counts, options.effectiveNumberBeta);
}

/** The supervised loss for logits [B, K] and labels [B]. */
export function supervisedLoss(
  logits: tf.Tensor2D,
  labels: tf.Tensor1D,
  loss: LossSpec,
  classWeights?: number[],
): tf.Scalar {
  if (loss.type === 'focal') return focalLossSoftmax(logits, labels, { gamma: loss.gamma, alpha: classWeights });
  return crossEntropyLoss(logits, labels, { labelSmoothing: loss.labelSmoothing, classWeights });
}

/**
 * Trains `classifier` on `context.labeled` (and `context.unlabeled` with FixMatch).
 * When every stage trains the head only and there is neither augmentation nor
 * FixMatch, backbone features are computed once and the head trains on them
 * (standardised; the standardisation is folded into the head's first linear
 * layer when those epochs end, and that layer's optimizer state starts over).
 */
export async function trainClassifier(
  classifier: Classifier,
  options: TrainOptions,
  context: TrainContext,
): Promise<TrainResult> {
  const { labeled, unlabeled } = context;
  const positions = Int32Array.from({ length: labeled.count }, (_, i) => i).filter((i) => labeled.labels[i] >= 0);
  if (positions.length < 2)
    throw new UsageError(`finetuning needs at least 2 labeled images, found ${positions.length}`);
  if (options.fixmatch && (!unlabeled || unlabeled.count === 0)) {
    throw new UsageError('FixMatch needs an unlabeled set (--unlabeled) with at least one image');
  }
  const { numClasses } = classifier;
  const classWeights = lossClassWeights(options, labeled.labels, numClasses);

  // Parameter groups: every trainable variable, the backbone's at a scaled rate.
  const variables = classifier.variables();
  const allParams: TrainableParam[] = variables
    .filter((v) => v.trainable)
    .map((v) => ({
      name: v.name,
      variable: v.variable,
      kind: v.kind,
      lrScale: v.name.startsWith('head.') ? 1 : options.backboneLrMultiplier,
    }));
  const phases = planPhases(options, allParams, positions.length);
  // The auxiliary task's heads (named auxiliary.<name>) train at the head's rate in every stage that trains the backbone.
  const auxiliary = options.auxiliary ? createAuxiliary(options.auxiliary, classifier, options.seed) : undefined;
  const auxiliaryPhases = new Set<Phase>();
  if (auxiliary) {
    for (const p of phases) if (p.stage >= 0 && p.backboneTraining && !p.precomputed) auxiliaryPhases.add(p);
    if (auxiliaryPhases.size === 0) {
      auxiliary.dispose();
      throw new UsageError(
        'recipe.auxiliary needs a stage that trains the backbone (trainable: [all], [backbone] or a layer); the stages train the head only',
      );
    }
    for (const p of auxiliaryPhases) p.trained = [...p.trained, ...auxiliary.params];
  }
  const used = new Set(phases.flatMap((p) => p.trained.map((t) => t.name)));
  const optimizer = createOptimizer(
    options.optimizer,
    [...allParams, ...(auxiliary?.params ?? [])].filter((p) => used.has(p.name)),
  );
  const stagePhases = phases.filter((p) => p.stage >= 0);
  // The moving average of the weights the run ends with (train.emaDecay), over the stages' steps.
  const ema =
    options.emaDecay && options.emaDecay > 0
      ? new WeightEma(
          variables.map((v) => ({ name: v.name, variable: v.variable })),
          options.emaDecay,
        )
      : undefined;
  // The stages' step: one compiled graph where the run allows it (training-path.ts), else eager.
  const compile = options.compile ?? 'off';
  const runProblem = options.fixmatch
    ? 'FixMatch chooses pseudo-labels on the host between its weak and strong forward passes'
    : auxiliary
      ? 'the auxiliary pretext task trains eagerly'
      : stagePhases.every((p) => p.precomputed)
        ? 'the stages train the head on backbone features computed once'
        : undefined;
  const trainingPath = chooseTrainingPath(
    compile,
    options.precision ?? 'auto',
    compile === 'off'
      ? undefined
      : (runProblem ?? compiledFinetuneProblem(classifier, options.optimizer, options.loss)),
  );
  context.onNote?.(`training step: ${trainingPath.reason}`);
  // Forward passes (features for the probe, evaluation) follow: the step's precision when it is compiled.
  classifier.inference = {
    compile: 'auto',
    precision: trainingPath.compiled ? trainingPath.precision : 'float32',
    names: {
      compile: 'compile',
      precision: trainingPath.compiled ? "the compiled step's precision" : 'float32 when the step is eager',
    },
  };
  context.onNote?.(
    `forward pass (features, evaluation): ${chooseInferencePath(classifier.backbone, classifier.head, classifier.inference).reason}`,
  );
  let compiledStep: CompiledFinetuneStep | undefined;
  const featureDim = classifier.backbone.featureDim;
  const firstLinear = firstLinearOf(classifier);
  const headNames = firstLinear
    ? variables.filter((v) => v.variable === firstLinear.kernel || v.variable === firstLinear.bias).map((v) => v.name)
    : [];
  const labeledView = options.trainView.length > 0 ? options.trainView : evalView(classifier.spec.input);
  const checkpoints = context.runDir
    ? new FinetuneCheckpoints(context.runDir, classifier, optimizer, {
        keep: options.checkpoints.keep,
        withBackbone: phases.some((p) => !p.precomputed),
        ema,
        extra: auxiliary?.variables,
      })
    : undefined;

  let history: EpochMetrics[] = [];
  let metrics = new MetricsLog();
  let epoch = 0;
  let globalStep = 0;
  let referenceLoss: number | null = null;
  // Running statistics of distribution alignment / self-adaptive thresholds (checkpointed).
  let pseudoState: PseudoLabelState = initialPseudoLabelState(numClasses);
  const labeledPrior = labeledClassPrior(
    Array.from(positions, (i) => labeled.labels[i]),
    numClasses,
  );
  const progress = context.progress
    ? new Progress({ label: 'finetune', total: phases.reduce((n, p) => n + p.epochs * p.stepsPerEpoch, 0) })
    : undefined;
  // Features of the un-augmented labeled images (precomputed phases), standardised.
  let features: Float32Array | undefined;
  let moments: Moments | undefined;
  const stepsPerEpoch = stagePhases[0]?.stepsPerEpoch ?? 0;
  try {
    if (checkpoints && context.resume) {
      const restored = await checkpoints.restore(stepsPerEpoch, numClasses);
      if (restored) {
        ({ epoch, globalStep, referenceLoss, history, metrics } = restored);
        if (restored.pseudoLabels) pseudoState = restored.pseudoLabels;
      }
    }
    await checkpoints?.status('running', epoch, globalStep);
    // Steps done before `epoch` (a resumed run's progress bar starts there).
    progress?.update(
      phases.reduce((n, p) => n + Math.max(0, Math.min(p.epochs, epoch - p.firstEpoch)) * p.stepsPerEpoch, 0),
    );
    for (const phase of phases) {
      const end = phase.firstEpoch + phase.epochs;
      if (epoch >= end) continue;
      if (phase.precomputed && !features) {
        const extracted = classifier.extractFeatures(labeled); // [N * D]
        // On precomputed features the head trains on standardised features (a linear probe converges
        // far faster that way); the standardisation is folded into the first linear layer afterwards.
        moments = firstLinear ? featureMoments(extracted, featureDim, positions) : undefined;
        features = moments ? standardize(extracted, featureDim, moments) : extracted;
      }
      if (trainingPath.compiled && !phase.precomputed) {
        // Built per stage (its trained set and BatchNorm mode); the weights as they are now are copied in.
        compiledStep = new CompiledFinetuneStep({
          classifier,
          trained: phase.trained,
          optimizer,
          optimizerConfig: options.optimizer,
          gradClipNorm: options.gradClipNorm,
          loss: options.loss,
          classWeights,
          backboneTraining: phase.backboneTraining,
          precision: trainingPath.precision,
        });
      }
      for (; epoch < end; epoch++) {
        const row = await runEpoch(phase, epoch);
        history.push(row);
        context.onEpoch?.(row);
        const next = phases.find((p) => epoch + 1 < p.firstEpoch + p.epochs);
        if (features && !next?.precomputed) {
          // Leaving the precomputed epochs: the head takes raw features from now on.
          if (moments && firstLinear) {
            foldStandardization(firstLinear, moments);
            optimizer.resetState(headNames.filter((n) => used.has(n)));
          }
          features = undefined;
          moments = undefined;
        }
        const lastOfPhase = epoch + 1 === end;
        const due =
          phase.stage < 0 ? lastOfPhase : (epoch + 1 - phase.firstEpoch) % options.checkpoints.everyEpochs === 0;
        if (compiledStep && lastOfPhase) {
          // The session's weights back to the tfjs variables before the next stage, checkpoints and evaluation.
          compiledStep.pull();
          compiledStep.dispose();
          compiledStep = undefined;
        }
        if (checkpoints && (due || lastOfPhase || !next)) {
          compiledStep?.pull();
          await checkpoints.save({
            epoch: epoch + 1,
            globalStep,
            stepsPerEpoch,
            seed: options.seed,
            referenceLoss,
            history,
            metrics,
            pseudoLabels: pseudoState,
          });
        }
        // Let other work (progress output, signals) run between epochs.
        await yieldToEventLoop();
      }
    }
    // The average replaces the last step's weights (before standardised features are folded in below).
    ema?.apply();
  } catch (error) {
    // A diverged run has said so in status.json already; any other failure says "failed".
    if (checkpoints && !(error instanceof DivergenceError))
      await checkpoints.status('failed', epoch, globalStep, (error as Error).message).catch(() => {});
    throw error;
  } finally {
    compiledStep?.dispose();
    if (features && moments && firstLinear) foldStandardization(firstLinear, moments);
    optimizer.dispose();
    ema?.dispose();
    auxiliary?.dispose();
    progress?.finish();
  }
  await checkpoints?.status('finished', epoch, globalStep);
  return {
    history,
    metrics,
    classWeights,
    precomputedFeatures: stagePhases.every((p) => p.precomputed),
    pseudoLabelState: options.fixmatch && usesRunningStatistics(options.fixmatch) ? pseudoState : undefined,
    trainingStep: trainingPath.reason,
  };

  /** One epoch of `phase`: steps, then its history row and metrics rows. */
  async function runEpoch(phase: Phase, epochIndex: number): Promise<EpochMetrics> {
    const started = Date.now();
    const local = phase.localEpoch(epochIndex);
    const epochRng = phase.root.derive('epoch', local);
    const order =
      options.sampler === 'class-balanced'
        ? classBalancedIndices(labeled.labels, numClasses, epochRng.derive('sampler'), positions.length)
        : shuffledIndices(positions, epochRng.derive('shuffle'));
    const fixmatch = phase.stage >= 0 ? options.fixmatch : undefined;
    const { batchSize, stepsPerEpoch } = phase;
    const meter = new FixMatchMeter();
    const stepRows: MetricsRow[] = [];
    // Running sums over the epoch's steps: losses (total, supervised, unlabeled) and right predictions.
    const sums = { loss: 0, supervised: 0, unlabeled: 0, auxiliary: 0, correct: 0, seen: 0 };
    const auxiliaryOn = auxiliaryPhases.has(phase);
    let lr = 0;
    for (let s = 0; s < stepsPerEpoch; s++) {
      const stepStart = performance.now();
      lr = phase.lrAt(local, s);
      const batch = new Int32Array(batchSize);
      for (let j = 0; j < batchSize; j++) batch[j] = order[(s * batchSize + j) % order.length];
      const stepRng = epochRng.derive('step', s);
      let unlabeledBatch: Int32Array | undefined;
      if (fixmatch && unlabeled) {
        // The k-th unlabeled draw of the stages is position k mod N of permutation floor(k / N):
        // a pure function of the step, so a resumed run draws what an uninterrupted one would.
        const count = batchSize * fixmatch.ratio;
        const first = (local * stepsPerEpoch + s) * count;
        unlabeledBatch = new Int32Array(count);
        let pass = -1;
        let permutation: Int32Array = new Int32Array(0);
        for (let j = 0; j < count; j++) {
          const k = first + j;
          const p = Math.floor(k / unlabeled.count);
          if (p !== pass) {
            pass = p;
            permutation = Int32Array.from(phase.root.derive('unlabeled', p).permutation(unlabeled.count));
          }
          unlabeledBatch[j] = permutation[k % unlabeled.count];
        }
      }
      const lambda = fixmatch ? unlabeledWeight(fixmatch, local + s / stepsPerEpoch) : 0;
      // The statistics after this step's batch; committed once the step is applied.
      let nextPseudoState: PseudoLabelState | undefined;
      let step: ReturnType<typeof lossAndGradients> | undefined;
      let compiledResult: CompiledStepResult | undefined;
      let lossValue: number;
      let gradNorm: number;
      if (compiledStep) {
        // The same augmented batch as the eager step; forward, backward and update in the session.
        const x = tf.tidy(() =>
          augmentTensorBatch(batchPixels(labeled, batch), labeledView, stepRng.derive('labeled')),
        );
        try {
          compiledResult = compiledStep.run(
            x,
            Int32Array.from(batch, (i) => labeled.labels[i]),
            lr,
          );
        } finally {
          x.dispose();
        }
        lossValue = compiledResult.loss;
        gradNorm = compiledResult.gradNorm;
      } else {
        step = lossAndGradients(
          phase.trained,
          () => {
            const labels = tf.tensor1d(
              Array.from(batch, (i) => labeled.labels[i]),
              'int32',
            );
            let logits: tf.Tensor2D;
            let unlabeledLogits: [tf.Tensor2D, tf.Tensor2D] | undefined;
            if (phase.precomputed && features) {
              const rows = new Float32Array(batchSize * featureDim);
              batch.forEach((i, j) => {
                rows.set(features!.subarray(i * featureDim, (i + 1) * featureDim), j * featureDim);
              });
              logits = classifier.head.apply(tf.tensor2d(rows, [batchSize, featureDim]), true);
            } else {
              const parts = [augmentTensorBatch(batchPixels(labeled, batch), labeledView, stepRng.derive('labeled'))];
              if (unlabeledBatch && unlabeled && fixmatch) {
                const pixels = batchPixels(unlabeled, unlabeledBatch);
                parts.push(augmentTensorBatch(pixels, fixmatch.weakView, stepRng.derive('weak')));
                parts.push(augmentTensorBatch(pixels, fixmatch.strongView, stepRng.derive('strong')));
              }
              const x = parts.length === 1 ? parts[0] : (tf.concat(parts, 0) as tf.Tensor4D);
              // One forward pass over [labeled; weak; strong] so BatchNorm sees them together (as FixMatch does).
              const joint = classifier.logits(x, phase.backboneTraining, true); // [B + 2U, K]
              if (parts.length === 1) logits = joint;
              else {
                const u = unlabeledBatch?.length ?? 0;
                const [l, weak, strong] = tf.split(joint, [batchSize, u, u], 0) as tf.Tensor2D[];
                logits = l;
                unlabeledLogits = [weak, strong];
              }
            }
            const sup = supervisedLoss(logits, labels, options.loss, classWeights);
            const keep: Record<string, tf.Tensor> = { pred: tf.argMax(logits, 1), sup };
            // The labeled terms: the supervised loss, plus the auxiliary task's when it is on.
            let labeledTerms = sup;
            if (auxiliaryOn && auxiliary) {
              // The pretext task on the first images of the step's unlabeled batch (its labeled batch without FixMatch).
              const source = unlabeledBatch && unlabeled ? unlabeled : labeled;
              const rows = (unlabeledBatch ?? batch).subarray(0, auxiliary.spec.images);
              const aux = auxiliary.loss(batchPixels(source, rows), stepRng.derive('auxiliary'));
              keep.aux = aux;
              labeledTerms = tf.add(sup, tf.mul(aux, auxiliary.spec.weight)) as tf.Scalar;
            }
            if (!unlabeledLogits || !fixmatch) return { loss: labeledTerms, keep };
            let unsup: tf.Scalar;
            if (usesRunningStatistics(fixmatch)) {
              // Alignment and thresholds on the host from the weak view's probabilities (constants
              // for the gradient), then the masked cross-entropy of the strong view.
              const probs = tf.softmax(unlabeledLogits[0]).dataSync(); // [U * K]
              const selection = selectPseudoLabels(probs, numClasses, pseudoState, labeledPrior, fixmatch);
              nextPseudoState = selection.state;
              const pseudo = tf.tensor1d(selection.labels, 'int32');
              const mask = tf.tensor1d(selection.mask);
              unsup = pseudoLabelLoss(unlabeledLogits[1], pseudo, mask);
              Object.assign(keep, { unsup, mask, pseudo });
            } else {
              const terms = fixMatchTerms(unlabeledLogits[0], unlabeledLogits[1], fixmatch.threshold);
              unsup = terms.loss;
              Object.assign(keep, { unsup, mask: terms.mask, pseudo: terms.pseudoLabels });
            }
            return { loss: tf.add(labeledTerms, tf.mul(unsup, lambda)) as tf.Scalar, keep };
          },
          options.gradClipNorm,
        );
        lossValue = step.loss.dataSync()[0];
        gradNorm = step.norm.dataSync()[0];
      }
      const problem = divergence(lossValue, gradNorm, referenceLoss, options.divergence);
      if (problem) {
        step?.dispose();
        const where = `epoch ${epochIndex}, step ${s} (global step ${globalStep + 1})`;
        const kept = checkpoints?.lastGood
          ? `the last good checkpoint is ${checkpoints.lastGood}`
          : 'no checkpoint had been written yet';
        const message = `finetuning stopped at ${where}: ${problem}; ${kept}. Lower the learning rate (recipe.train.optimizer.lr) or set recipe.train.gradClipNorm${checkpoints ? ', then resume' : ''}.`;
        await checkpoints?.status('diverged', epoch, globalStep, message);
        throw new DivergenceError(message, context.runDir ?? '', checkpoints?.lastGood);
      }
      if (compiledStep) compiledStep.countUpdate();
      else if (step) tf.tidy(() => optimizer.apply(step.grads, lr));
      if (ema && phase.stage >= 0) {
        // The session's weights to the tfjs variables first when the step is compiled.
        compiledStep?.pull();
        ema.update();
      }
      if (nextPseudoState) pseudoState = nextPseudoState;
      referenceLoss ??= lossValue;
      globalStep++;
      let supValue = lossValue;
      let batchCorrect = 0;
      if (compiledResult) batchCorrect = Math.round(compiledResult.metrics.accuracy * batchSize);
      else if (step) {
        const predicted = step.kept.pred.dataSync();
        supValue = step.kept.sup.dataSync()[0];
        if (step.kept.aux) sums.auxiliary += step.kept.aux.dataSync()[0];
        for (let j = 0; j < batchSize; j++) if (predicted[j] === labeled.labels[batch[j]]) batchCorrect++;
      }
      sums.correct += batchCorrect;
      sums.seen += batchSize;
      sums.loss += lossValue;
      sums.supervised += supValue;
      let maskRate = Number.NaN;
      if (step?.kept.unsup && step.kept.mask && step.kept.pseudo && unlabeledBatch && unlabeled) {
        sums.unlabeled += step.kept.unsup.dataSync()[0];
        const mask = step.kept.mask.dataSync();
        maskRate = Array.from(mask).reduce((a, b) => a + b, 0) / Math.max(1, mask.length);
        const hidden = Array.from(unlabeledBatch, (i) => unlabeled.labels[i]);
        meter.add(mask, step.kept.pseudo.dataSync(), hidden);
      }
      step?.dispose();
      const seconds = (performance.now() - stepStart) / 1000;
      const stepRow: MetricsRow = {
        kind: 'step',
        epoch: epochIndex,
        step: s,
        globalStep,
        loss: lossValue,
        lr,
        gradNorm,
        imagesPerSecond: (batchSize + 2 * (unlabeledBatch?.length ?? 0)) / Math.max(seconds, 1e-9),
        dataWaitMs: 0,
        embeddingSpread: Number.NaN,
        knnAccuracy: Number.NaN,
        seconds,
        trainAccuracy: batchCorrect / batchSize,
        maskRate,
      };
      metrics.add(stepRow);
      stepRows.push(stepRow);
      context.onStep?.(stepRow);
      progress?.tick(1, `loss ${lossValue.toFixed(4)}`);
    }
    const fm = fixmatch ? meter.stats() : undefined;
    const seconds = (Date.now() - started) / 1000;
    metrics.add(summarizeEpoch(stepRows, epochIndex, globalStep, seconds));
    return {
      epoch: epochIndex,
      stage: phase.stage,
      loss: sums.loss / stepsPerEpoch,
      supervisedLoss: sums.supervised / stepsPerEpoch,
      unlabeledLoss: fm ? sums.unlabeled / stepsPerEpoch : undefined,
      auxiliaryLoss: auxiliaryOn ? sums.auxiliary / stepsPerEpoch : undefined,
      trainAccuracy: sums.correct / sums.seen,
      learningRate: lr,
      maskRate: fm?.maskRate,
      pseudoLabelAccuracy: fm?.pseudoLabelAccuracy,
      seconds,
    };
  }
}

/** The auxiliary task's heads in a run: their parameters, checkpointed variables and loss. */
interface AuxiliaryRun {
  spec: AuxiliaryTask;
  /** Trainable variables, named `auxiliary.<head variable>`, at the head's learning rate. */
  params: TrainableParam[];
  /** Every variable of the heads (BatchNorm statistics too), for checkpoints. */
  variables: { name: string; variable: tf.Variable }[];
  /** The task's loss on images [N, H, W, C] (pixels as batchPixels gives them); call inside the step's tidy. */
  loss(pixels: tf.Tensor4D, rng: Rng): tf.Scalar;
  dispose(): void;
}

function createAuxiliary(spec: AuxiliaryTask, classifier: Classifier, seed: string | number): AuxiliaryRun {
  const heads = spec.task.createHeads(spec.options, classifier.backbone.featureDim, createRng(`${seed}:auxiliary`));
  const modules = Object.values(spec.task.headModules(heads)) as Head[];
  const named = modules.flatMap((m) => m.variables()).map((v) => ({ ...v, name: `auxiliary.${v.name}` }));
  return {
    spec,
    params: named
      .filter((v) => v.trainable)
      .map((v) => ({ name: v.name, variable: v.variable, kind: v.kind, lrScale: 1 })),
    variables: named.map((v) => ({ name: v.name, variable: v.variable })),
    loss(pixels, rng) {
      const views = spec.views.map((view, i) => augmentTensorBatch(pixels, view, rng.derive('view', i)));
      const out = spec.task.step(
        { backbone: classifier.backbone, heads, views, training: true, rng: rng.derive('task') },
        spec.options,
      );
      return out.loss;
    },
    dispose() {
      for (const m of modules) m.dispose();
    },
  };
}
