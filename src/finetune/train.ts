/**
 * The finetuning loop: stages of (epochs, trainable parts) — e.g. head only,
 * then layer4 + head, then everything — with a lower learning rate for the
 * backbone than for the head, label-smoothed cross-entropy or focal loss, class
 * weights, class-balanced sampling, and optional FixMatch on an unlabeled set.
 *
 * Each step runs inside tf.tidy and awaits nothing; the only state across steps
 * is variables and optimizer slots (owned and disposed here).
 */
import * as tf from '@tensorflow/tfjs';
import type { NamedVariable } from '../backbones/types.js';
import type { PipelineSpec } from '../data/types.js';
import { invalidOption, UsageError } from '../util/errors.js';
import { Progress } from '../util/progress.js';
import { createRng } from '../util/rng.js';
import type { Classifier } from './classifier.js';
import { featureMoments, firstLinearOf, foldStandardization, standardize } from './feature-standardization.js';
import { FixMatchMeter, type FixMatchOptions, fixMatchTerms, unlabeledWeight } from './fixmatch.js';
import { batchPixels, type ImageSet } from './image-set.js';
import {
  classCounts,
  crossEntropyLoss,
  effectiveNumberWeights,
  focalLossSoftmax,
  inverseFrequencyWeights,
} from './losses.js';
import { classBalancedIndices, shuffledIndices } from './sampler.js';
import { augmentBatch, evalPipeline } from './tensor-augment.js';

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
  optimizer: 'sgd' | 'momentum' | 'adam';
  /** Peak learning rate of the head. */
  learningRate: number;
  /** Backbone learning rate = learningRate * backboneLrMultiplier. */
  backboneLrMultiplier: number;
  momentum: number;
  /** Decoupled weight decay on conv and dense kernels (not BN, not biases). */
  weightDecay: number;
  schedule: 'cosine' | 'constant';
  warmupEpochs: number;
  loss: LossSpec;
  classWeighting: 'none' | 'inverse-frequency' | 'effective-number';
  effectiveNumberBeta: number;
  sampler: 'shuffle' | 'class-balanced';
  /** Steps per epoch (default: one pass over the labeled images), e.g. to give every label budget the same compute. */
  stepsPerEpoch?: number;
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
  seed: string | number;
}

export interface ProbeSpec {
  epochs: number;
  learningRate: number;
  batchSize: number;
}

export const TRAIN_DEFAULTS: Omit<TrainOptions, 'trainView' | 'seed'> = {
  stages: [{ epochs: 10, trainable: ['head'] }],
  batchSize: 64,
  optimizer: 'adam',
  learningRate: 1e-3,
  backboneLrMultiplier: 0.1,
  momentum: 0.9,
  weightDecay: 0,
  schedule: 'cosine',
  warmupEpochs: 0,
  loss: { type: 'cross-entropy', labelSmoothing: 0, gamma: 2 },
  classWeighting: 'none',
  effectiveNumberBeta: 0.999,
  sampler: 'shuffle',
};

export interface EpochMetrics {
  epoch: number;
  /** Index into `stages`; -1 for the epochs of the linear probe (`probe`). */
  stage: number;
  loss: number;
  supervisedLoss: number;
  unlabeledLoss?: number;
  trainAccuracy: number;
  learningRate: number;
  maskRate?: number;
  pseudoLabelAccuracy?: number;
  seconds: number;
}

export interface TrainResult {
  history: EpochMetrics[];
  /** Per-class weights used by the loss (undefined = none). */
  classWeights?: number[];
  /** Whether the head was trained on precomputed features only (the backbone did not change). */
  precomputedFeatures: boolean;
}

export interface TrainContext {
  labeled: ImageSet;
  unlabeled?: ImageSet;
  onEpoch?: (m: EpochMetrics) => void;
  progress?: boolean;
}

function matches(name: string, prefixes: string[]): boolean {
  return prefixes.some(
    (p) => p === 'all' || (p === 'backbone' ? !name.startsWith('head.') : name === p || name.startsWith(`${p}.`)),
  );
}

/** Learning-rate factor in [0, 1] at training progress t in [0, 1] (cosine, linear warm-up). */
export function scheduleFactor(
  options: Pick<TrainOptions, 'schedule' | 'warmupEpochs'>,
  epoch: number,
  totalEpochs: number,
): number {
  if (options.warmupEpochs > 0 && epoch < options.warmupEpochs) return (epoch + 1e-9) / options.warmupEpochs;
  if (options.schedule === 'constant') return 1;
  const span = Math.max(1e-9, totalEpochs - options.warmupEpochs);
  const t = Math.min(1, (epoch - options.warmupEpochs) / span);
  return 0.5 * (1 + Math.cos(Math.PI * t));
}

function makeOptimizer(options: TrainOptions): tf.Optimizer {
  switch (options.optimizer) {
    case 'sgd':
      return tf.train.sgd(options.learningRate);
    case 'momentum':
      return tf.train.momentum(options.learningRate, options.momentum, true);
    case 'adam':
      return tf.train.adam(options.learningRate);
  }
}

function setLearningRate(optimizer: tf.Optimizer, lr: number): void {
  const o = optimizer as unknown as { setLearningRate?: (v: number) => void; learningRate: number };
  if (o.setLearningRate) o.setLearningRate(lr);
  else o.learningRate = lr;
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
 * FixMatch, backbone features are computed once and the head trains on them.
 */
export async function trainClassifier(
  classifier: Classifier,
  options: TrainOptions,
  context: TrainContext,
): Promise<TrainResult> {
  const { labeled, unlabeled } = context;
  if (options.probe && options.probe.epochs > 0) {
    // LP-FT: train the head alone on precomputed features (the all-head-only path below), then
    // run the stages from that head. The probe's seed is derived so its shuffles are its own.
    const probed = await trainClassifier(
      classifier,
      {
        ...options,
        stages: [{ epochs: options.probe.epochs, trainable: ['head'] }],
        batchSize: options.probe.batchSize,
        learningRate: options.probe.learningRate,
        schedule: 'cosine',
        warmupEpochs: 0,
        stepsPerEpoch: undefined,
        trainView: [],
        fixmatch: undefined,
        probe: undefined,
        seed: `${options.seed}:probe`,
      },
      { labeled, progress: context.progress, onEpoch: (m) => context.onEpoch?.({ ...m, stage: -1 }) },
    );
    const offset = options.probe.epochs;
    const rest = await trainClassifier(
      classifier,
      { ...options, probe: undefined },
      { ...context, onEpoch: (m) => context.onEpoch?.({ ...m, epoch: m.epoch + offset }) },
    );
    return {
      history: [
        ...probed.history.map((m) => ({ ...m, stage: -1 })),
        ...rest.history.map((m) => ({ ...m, epoch: m.epoch + offset })),
      ],
      classWeights: rest.classWeights,
      precomputedFeatures: rest.precomputedFeatures,
    };
  }
  const positions = Int32Array.from({ length: labeled.count }, (_, i) => i).filter((i) => labeled.labels[i] >= 0);
  if (positions.length < 2)
    throw new UsageError(`finetuning needs at least 2 labeled images, found ${positions.length}`);
  if (options.fixmatch && (!unlabeled || unlabeled.count === 0)) {
    throw new UsageError('FixMatch needs an unlabeled set (--unlabeled) with at least one image');
  }
  for (let i = 0; i < options.stages.length; i++) {
    if (options.stages[i].trainable.length === 0)
      throw invalidOption(`recipe.stages[${i}].trainable`, 'a non-empty list', []);
  }
  const { numClasses } = classifier;
  const classWeights = lossClassWeights(options, labeled.labels, numClasses);
  const all = classifier.variables();
  const headOnly = options.stages.every((s) => s.trainable.every((p) => p === 'head' || p.startsWith('head.')));
  const precompute = headOnly && options.trainView.length === 0 && !options.fixmatch;
  const featureDim = classifier.backbone.featureDim;
  const firstLinear = firstLinearOf(classifier);
  // On precomputed features the head trains on standardised features (a linear probe converges
  // far faster that way); the standardisation is folded into the first linear layer afterwards.
  const extracted = precompute ? classifier.extractFeatures(labeled) : undefined; // [N * D]
  const standardization = extracted && firstLinear ? featureMoments(extracted, featureDim, positions) : undefined;
  const features = extracted && standardization ? standardize(extracted, featureDim, standardization) : extracted;
  const { size, mean, std } = classifier.spec.input;
  const labeledView = options.trainView.length > 0 ? options.trainView : evalPipeline(size, mean, std);
  const root = createRng(options.seed);
  const totalEpochs = options.stages.reduce((a, s) => a + s.epochs, 0);
  const batchSize = Math.min(options.batchSize, positions.length);
  const stepsPerEpoch = options.stepsPerEpoch ?? Math.ceil(positions.length / batchSize);
  // tfjs optimizers keep their slots by the position of a variable in the gradient map, so
  // each stage (a different set of trained variables) gets fresh optimizers.
  let headOptimizer: tf.Optimizer | undefined;
  let backboneOptimizer: tf.Optimizer | undefined;
  const history: EpochMetrics[] = [];
  const progress = context.progress
    ? new Progress({ label: 'finetune', total: totalEpochs * stepsPerEpoch })
    : undefined;
  let unlabeledOrder: Int32Array = new Int32Array(0);
  let unlabeledCursor = 0;
  let unlabeledPass = 0;
  let epoch = 0;
  try {
    for (let stageIndex = 0; stageIndex < options.stages.length; stageIndex++) {
      const stage = options.stages[stageIndex];
      const trained = all.filter((v) => v.trainable && matches(v.name, stage.trainable));
      if (trained.length === 0) {
        throw invalidOption(
          `recipe.stages[${stageIndex}].trainable`,
          'name prefixes that select some variables (head, layer4, backbone, all)',
          stage.trainable,
        );
      }
      const backboneTrained = trained.filter((v) => !v.name.startsWith('head.'));
      const headTrained = trained.filter((v) => v.name.startsWith('head.'));
      const backboneTraining = backboneTrained.length > 0;
      // The Backbone contract has one training flag: when any part of the backbone trains, every
      // BatchNorm layer normalises with batch statistics and updates its running statistics
      // (frozen parts keep their weights). Restoring the running statistics of frozen layers
      // would leave them inconsistent with what training saw, and evaluation would suffer.
      headOptimizer?.dispose();
      backboneOptimizer?.dispose();
      headOptimizer = makeOptimizer(options);
      backboneOptimizer = makeOptimizer(options);
      const stageHeadOptimizer = headOptimizer;
      const stageBackboneOptimizer = backboneOptimizer;
      const decayed = new Set(
        trained.filter((v) => v.kind === 'conv' || v.kind === 'dense').map((v) => v.variable.name),
      );
      for (let e = 0; e < stage.epochs; e++, epoch++) {
        const started = Date.now();
        const epochRng = root.derive('epoch', epoch);
        const order =
          options.sampler === 'class-balanced'
            ? classBalancedIndices(labeled.labels, numClasses, epochRng.derive('sampler'), positions.length)
            : shuffledIndices(positions, epochRng.derive('shuffle'));
        const meter = new FixMatchMeter();
        let lossSum = 0;
        let supSum = 0;
        let unsupSum = 0;
        let correct = 0;
        let seen = 0;
        let lr = 0;
        for (let s = 0; s < stepsPerEpoch; s++) {
          const factor = scheduleFactor(options, epoch + s / stepsPerEpoch, totalEpochs);
          lr = options.learningRate * factor;
          setLearningRate(stageHeadOptimizer, lr);
          setLearningRate(stageBackboneOptimizer, lr * options.backboneLrMultiplier);
          const batch = new Int32Array(batchSize);
          for (let j = 0; j < batchSize; j++) batch[j] = order[(s * batchSize + j) % order.length];
          const stepRng = epochRng.derive('step', s);
          let unlabeledBatch: Int32Array | undefined;
          if (options.fixmatch && unlabeled) {
            const count = batchSize * options.fixmatch.ratio;
            unlabeledBatch = new Int32Array(count);
            for (let j = 0; j < count; j++) {
              if (unlabeledCursor >= unlabeledOrder.length) {
                unlabeledOrder = root.derive('unlabeled', unlabeledPass++).permutation(unlabeled.count);
                unlabeledCursor = 0;
              }
              unlabeledBatch[j] = unlabeledOrder[unlabeledCursor++];
            }
          }
          const lambda = options.fixmatch ? unlabeledWeight(options.fixmatch, epoch + s / stepsPerEpoch) : 0;
          const out = tf.tidy(() => {
            const labels = tf.tensor1d(
              Array.from(batch, (i) => labeled.labels[i]),
              'int32',
            );
            let side:
              | { pred: tf.Tensor; sup: tf.Tensor; unsup?: tf.Tensor; mask?: tf.Tensor; pseudo?: tf.Tensor }
              | undefined;
            const lossFn = (): tf.Scalar => {
              let logits: tf.Tensor2D;
              let unlabeledLogits: [tf.Tensor2D, tf.Tensor2D] | undefined;
              if (features) {
                const rows = new Float32Array(batchSize * featureDim);
                batch.forEach((i, j) => {
                  rows.set(features.subarray(i * featureDim, (i + 1) * featureDim), j * featureDim);
                });
                const f = tf.tensor2d(rows, [batchSize, featureDim]);
                logits = classifier.head.apply(f, true);
              } else {
                const parts = [augmentBatch(batchPixels(labeled, batch), labeledView, stepRng.derive('labeled'))];
                if (unlabeledBatch && unlabeled && options.fixmatch) {
                  const pixels = batchPixels(unlabeled, unlabeledBatch);
                  parts.push(augmentBatch(pixels, options.fixmatch.weakView, stepRng.derive('weak')));
                  parts.push(augmentBatch(pixels, options.fixmatch.strongView, stepRng.derive('strong')));
                }
                const x = parts.length === 1 ? parts[0] : (tf.concat(parts, 0) as tf.Tensor4D);
                // One forward pass over [labeled; weak; strong] so BatchNorm sees them together (as FixMatch does).
                const joint = classifier.logits(x, backboneTraining, true); // [B + 2U, K]
                if (parts.length === 1) logits = joint;
                else {
                  const u = unlabeledBatch?.length ?? 0;
                  const [l, weak, strong] = tf.split(joint, [batchSize, u, u], 0) as tf.Tensor2D[];
                  logits = l;
                  unlabeledLogits = [weak, strong];
                }
              }
              const sup = supervisedLoss(logits, labels, options.loss, classWeights);
              let total = sup;
              side = { pred: tf.keep(tf.argMax(logits, 1)), sup: tf.keep(sup.clone()) };
              if (unlabeledLogits && options.fixmatch) {
                const terms = fixMatchTerms(unlabeledLogits[0], unlabeledLogits[1], options.fixmatch.threshold);
                total = tf.add(sup, tf.mul(terms.loss, lambda)) as tf.Scalar;
                side.unsup = tf.keep(terms.loss.clone());
                side.mask = tf.keep(terms.mask.clone());
                side.pseudo = tf.keep(terms.pseudoLabels.clone());
              }
              return total;
            };
            const { value, grads } = tf.variableGrads(
              lossFn,
              trained.map((v) => v.variable),
            );
            const pick = (list: NamedVariable[]) =>
              Object.fromEntries(
                list.filter((v) => grads[v.variable.name]).map((v) => [v.variable.name, grads[v.variable.name]]),
              );
            if (headTrained.length) stageHeadOptimizer.applyGradients(pick(headTrained));
            if (backboneTrained.length) stageBackboneOptimizer.applyGradients(pick(backboneTrained));
            if (options.weightDecay > 0) {
              for (const v of trained) {
                if (!decayed.has(v.variable.name)) continue;
                const groupLr = v.name.startsWith('head.') ? lr : lr * options.backboneLrMultiplier;
                v.variable.assign(tf.mul(v.variable, 1 - groupLr * options.weightDecay));
              }
            }
            return { value: tf.keep(value), side };
          });
          const side = out.side!;
          const lossValue = out.value.dataSync()[0];
          const predicted = side.pred.dataSync();
          const supValue = side.sup.dataSync()[0];
          if (!Number.isFinite(lossValue)) {
            tf.dispose(
              [out.value, side.pred, side.sup, side.unsup, side.mask, side.pseudo].filter(Boolean) as tf.Tensor[],
            );
            throw new Error(`the loss became ${lossValue} at epoch ${epoch}, step ${s}; lower the learning rate`);
          }
          for (let j = 0; j < batchSize; j++) if (predicted[j] === labeled.labels[batch[j]]) correct++;
          seen += batchSize;
          lossSum += lossValue;
          supSum += supValue;
          if (side.unsup && side.mask && side.pseudo && unlabeledBatch && unlabeled) {
            unsupSum += side.unsup.dataSync()[0];
            const hidden = Array.from(unlabeledBatch, (i) => unlabeled.labels[i]);
            meter.add(side.mask.dataSync(), side.pseudo.dataSync(), hidden);
          }
          tf.dispose(
            [out.value, side.pred, side.sup, side.unsup, side.mask, side.pseudo].filter(Boolean) as tf.Tensor[],
          );
          progress?.tick(1, `loss ${lossValue.toFixed(4)}`);
        }
        const fm = options.fixmatch ? meter.stats() : undefined;
        const metrics: EpochMetrics = {
          epoch,
          stage: stageIndex,
          loss: lossSum / stepsPerEpoch,
          supervisedLoss: supSum / stepsPerEpoch,
          unlabeledLoss: fm ? unsupSum / stepsPerEpoch : undefined,
          trainAccuracy: correct / seen,
          learningRate: lr,
          maskRate: fm?.maskRate,
          pseudoLabelAccuracy: fm?.pseudoLabelAccuracy,
          seconds: (Date.now() - started) / 1000,
        };
        history.push(metrics);
        context.onEpoch?.(metrics);
        // Let other work (progress output, signals) run between epochs.
        await new Promise((resolve) => setImmediate(resolve));
      }
    }
  } finally {
    headOptimizer?.dispose();
    backboneOptimizer?.dispose();
    progress?.finish();
    if (standardization && firstLinear) foldStandardization(firstLinear, standardization);
  }
  return { history, classWeights, precomputedFeatures: precompute };
}
