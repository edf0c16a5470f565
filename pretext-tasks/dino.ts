/**
 * DINO for ResNets — Caron, Touvron, Misra, Jégou, Mairal, Bojanowski and
 * Joulin, "Emerging Properties in Self-Supervised Vision Transformers", ICCV 2021.
 *
 * The sentence implemented: "We simply apply a centering and sharpening of the
 * momentum teacher outputs to avoid model collapse." Multi-crop: two global views
 * (the teacher sees only these) and several smaller local views (the student sees
 * all); a student head MLP (linear-BN-ReLU x 2, linear bottleneck, L2
 * normalisation, weight-normalised linear to K outputs) and its momentum copy as
 * the teacher (the loop's TaskState); the loss is the cross-entropy between the
 * teacher's centred, sharpened softmax and the student's softmax over every pair of
 * different views (Algorithm 1); the centre is an EMA of the teacher outputs (a
 * checkpointed buffer); the teacher temperature warms up linearly per epoch.
 * (ReLU instead of GELU in the head; the last layer is not frozen in the first epoch.)
 */
import * as tf from '@tensorflow/tfjs';
import { createNamedHead, mlpBlocks } from '../src/backbones/heads.js';
import type { HeadBlock } from '../src/backbones/types.js';
import { DT_FLOAT } from '../src/engine/graph-runtime.js';
import { type SimclrAugmentationOptions, simclrView } from './augmentations.js';
import { dinoCenterGraph, dinoLossGraph, rowBlocksGraph } from './graph-losses.js';
import { dinoCenter, dinoLoss } from './losses.js';
import {
  checkColorAugmentation,
  checkInteger,
  checkIntegerOrWord,
  checkMomentumRange,
  checkNumber,
  checkRange,
  validatorFor,
} from './options.js';
import { projectionHeadModules, projectionTarget } from './two-view.js';
import type { MomentumTargetOptions, PretextTask, ProjectionHeads, TrainingProgress } from './types.js';

/** DINO's options (teacher momentum 0.996 to 1); colorJitterStrength and blur mean what they mean for the SimCLR views. */
export interface DinoOptions extends Omit<SimclrAugmentationOptions, 'cropScale'>, MomentumTargetOptions {
  /** Output size K of the head (DINO: 65536; 4096 is plenty for small data). */
  outputDim: number;
  /** Hidden width of the head MLP (DINO: 2048). */
  hiddenDim: number;
  /** Bottleneck before the weight-normalised last layer (DINO: 256). */
  bottleneckDim: number;
  /** Student temperature (DINO: 0.1). */
  studentTemperature: number;
  /** Teacher temperature after the warm-up (DINO: 0.04-0.07). */
  teacherTemperature: number;
  /** Teacher temperature at epoch 0 (DINO: 0.04). */
  warmupTeacherTemperature: number;
  /** Epochs of the linear teacher-temperature warm-up (DINO: 30); 0 = none. */
  warmupTeacherEpochs: number;
  /** Momentum of the centre's EMA (DINO: 0.9). */
  centerMomentum: number;
  /** Number of local views (DINO: 6-10). */
  localViews: number;
  /** Side of a local view in px; 'auto' = 96/224 of the input size (DINO's ratio), at least 8. */
  localSize: number | 'auto';
  /** Crop area range of the two global views (DINO: [0.4, 1]; [0.14, 1] for ResNet-50). */
  globalCropScale: [number, number];
  /** Crop area range of the local views (DINO: [0.05, 0.4]). */
  localCropScale: [number, number];
}

export const DINO_DEFAULTS: Readonly<DinoOptions> = Object.freeze({
  outputDim: 65536,
  hiddenDim: 2048,
  bottleneckDim: 256,
  studentTemperature: 0.1,
  teacherTemperature: 0.04,
  warmupTeacherTemperature: 0.04,
  warmupTeacherEpochs: 30,
  centerMomentum: 0.9,
  momentum: 0.996,
  momentumEnd: 1,
  localViews: 6,
  localSize: 'auto' as const,
  globalCropScale: [0.4, 1] as [number, number],
  localCropScale: [0.05, 0.4] as [number, number],
  colorJitterStrength: 0.5,
  blur: 'auto' as const,
});

/** DINO's head for ResNets: (linear, BN, ReLU) x 2, linear bottleneck, L2 norm, weight-normalised linear. */
export function dinoHeadBlocks(hiddenDim: number, bottleneckDim: number, outputDim: number): HeadBlock[] {
  return [
    ...mlpBlocks([hiddenDim, hiddenDim], bottleneckDim),
    { l2normalize: true },
    { linear: outputDim, bias: false, normalizedWeight: true },
  ];
}

/** The local views' side in px for an input size. */
export function localViewSize(options: Pick<DinoOptions, 'localSize'>, inputSize: number): number {
  return options.localSize === 'auto' ? Math.max(8, Math.round((inputSize * 96) / 224)) : options.localSize;
}

/**
 * The teacher temperature of an epoch: linear from warmupTeacherTemperature at
 * epoch 0 to teacherTemperature at epoch warmupTeacherEpochs - 1, then constant
 * (DINO's per-epoch schedule).
 */
export function teacherTemperatureAt(
  options: Pick<DinoOptions, 'teacherTemperature' | 'warmupTeacherTemperature' | 'warmupTeacherEpochs'>,
  epoch: number,
): number {
  const { warmupTeacherEpochs: warmup, warmupTeacherTemperature: start, teacherTemperature: end } = options;
  if (warmup <= 1 || epoch >= warmup) return end;
  return start + ((end - start) * epoch) / (warmup - 1);
}

export const dinoTask: PretextTask<DinoOptions, ProjectionHeads> = {
  id: 'dino',
  paper:
    'Caron et al., "Emerging Properties in Self-Supervised Vision Transformers" (DINO), ICCV 2021, here with ResNet backbones: ' +
    '"We simply apply a centering and sharpening of the momentum teacher outputs to avoid model collapse."',
  // No negatives: collapse is this method's failure mode; warn at half the healthy spread measured
  // on Fashion-MNIST (about 0.44 x 1/sqrt(D) after 64 steps, docs/results.md).
  collapseMinRatio: 0.2,
  defaults: DINO_DEFAULTS,
  optionDocs: {
    outputDim: 'Output size K of the head, integer >= 2 (default 65536; 4096 for small data).',
    hiddenDim: 'Hidden width of the head MLP, integer >= 1 (default 2048).',
    bottleneckDim: 'Bottleneck size before the last layer, integer >= 1 (default 256).',
    studentTemperature: 'Student softmax temperature, a number > 0 and <= 10 (default 0.1).',
    teacherTemperature: 'Teacher temperature after the warm-up, a number > 0 and <= 10 (default 0.04).',
    warmupTeacherTemperature: 'Teacher temperature at epoch 0, a number > 0 and <= 10 (default 0.04).',
    warmupTeacherEpochs: 'Epochs of the linear teacher-temperature warm-up, integer >= 0 (default 30).',
    centerMomentum: 'Momentum of the centre (EMA of the teacher outputs), in [0, 1] (default 0.9).',
    momentum: 'Teacher momentum at the first step, in [0, 1] (default 0.996); it rises to momentumEnd along a cosine.',
    momentumEnd: 'Teacher momentum at the last step, in [momentum, 1] (default 1).',
    localViews: 'Number of local views per image, integer >= 0 (default 6).',
    localSize: 'Side of the local views in px (integer >= 8), or "auto" = 96/224 of the input size (default).',
    globalCropScale: 'Crop area range [low, high] of the two global views within [0.01, 1] (default [0.4, 1]).',
    localCropScale: 'Crop area range [low, high] of the local views within [0.01, 1] (default [0.05, 0.4]).',
    colorJitterStrength:
      'Colour distortion strength s in [0, 2]: jitter brightness/contrast/saturation 0.8s, hue 0.2s with p 0.8 (default 0.5).',
    blur: '"auto" (default: Gaussian blur with p 0.5 only for views of 96 px or more), "on" or "off".',
  },
  validate: validatorFor(DINO_DEFAULTS, (merged) => ({
    outputDim: checkInteger('outputDim', merged.outputDim, 2, 1 << 20),
    hiddenDim: checkInteger('hiddenDim', merged.hiddenDim, 1, 65536),
    bottleneckDim: checkInteger('bottleneckDim', merged.bottleneckDim, 1, 65536),
    studentTemperature: checkNumber('studentTemperature', merged.studentTemperature, 0, 10, true),
    teacherTemperature: checkNumber('teacherTemperature', merged.teacherTemperature, 0, 10, true),
    warmupTeacherTemperature: checkNumber('warmupTeacherTemperature', merged.warmupTeacherTemperature, 0, 10, true),
    warmupTeacherEpochs: checkInteger('warmupTeacherEpochs', merged.warmupTeacherEpochs, 0, 100000),
    centerMomentum: checkNumber('centerMomentum', merged.centerMomentum, 0, 1),
    ...checkMomentumRange(merged),
    localViews: checkInteger('localViews', merged.localViews, 0, 64),
    localSize: checkIntegerOrWord('localSize', merged.localSize, 8, 'auto'),
    globalCropScale: checkRange('globalCropScale', merged.globalCropScale, 0.01, 1),
    localCropScale: checkRange('localCropScale', merged.localCropScale, 0.01, 1),
    ...checkColorAugmentation(merged),
  })),
  views(options, input) {
    const augmentation = (cropScale: [number, number]): SimclrAugmentationOptions => ({
      cropScale,
      colorJitterStrength: options.colorJitterStrength,
      blur: options.blur,
    });
    const global = simclrView(input, augmentation(options.globalCropScale));
    const local = simclrView(
      { ...input, size: localViewSize(options, input.size) },
      augmentation(options.localCropScale),
    );
    return [
      global,
      global.map((step) => ({ ...step })),
      ...Array.from({ length: options.localViews }, () => local.map((step) => ({ ...step }))),
    ];
  },
  createHeads(options, featureDim, rng) {
    const blocks = dinoHeadBlocks(options.hiddenDim, options.bottleneckDim, options.outputDim);
    return { projection: createNamedHead('projection', blocks, featureDim, rng) };
  },
  headModules: projectionHeadModules,
  state(options) {
    return {
      target: projectionTarget(options),
      buffers: { center: { shape: [1, options.outputDim], init: 'zeros' } },
    };
  },
  step(ctx, options) {
    const views = ctx.views as tf.Tensor4D[]; // 2 global [B, H, W, C], then local [B, h, w, C]
    const target = ctx.target;
    const center = ctx.buffers?.center as tf.Tensor2D | undefined; // [1, K]
    if (!target?.heads.projection || !center) {
      throw new Error('dino needs its momentum teacher and centre (run it through the training loop)');
    }
    const batch = views[0].shape[0];
    // Row blocks by slicing (tfjs's split has a gradient bug when its outputs feed different terms).
    const split = (out: tf.Tensor2D, parts: number) =>
      Array.from({ length: parts }, (_, i) => tf.slice(out, [i * batch, 0], [batch, -1]) as tf.Tensor2D);
    // Views of one size go through the network together (DINO's multi-crop wrapper).
    const globals = tf.concat(views.slice(0, 2), 0) as tf.Tensor4D; // [2B, H, W, C]
    const studentFeatures = ctx.backbone.features(globals, ctx.training); // [2B, D]
    const student = split(ctx.heads.projection.apply(studentFeatures, ctx.training), 2);
    if (views.length > 2) {
      const locals = tf.concat(views.slice(2), 0) as tf.Tensor4D; // [L B, h, w, C]
      const localOut = ctx.heads.projection.apply(ctx.backbone.features(locals, ctx.training), ctx.training);
      student.push(...split(localOut, views.length - 2));
    }
    const teacher = split(
      target.heads.projection!.apply(target.backbone.features(globals, ctx.training), ctx.training),
      2,
    ); // 2 x [B, K]
    const progress: Pick<TrainingProgress, 'epoch'> = ctx.progress ?? { epoch: 0 };
    const temperature = teacherTemperatureAt(options, progress.epoch);
    return {
      loss: dinoLoss(teacher, student, center, temperature, options.studentTemperature),
      metrics: { teacherTemperature: tf.scalar(temperature) },
      embeddings: tf.slice(studentFeatures, [0, 0], [batch, -1]) as tf.Tensor2D,
      bufferUpdates: { center: dinoCenter(center, teacher, options.centerMomentum) },
    };
  },
  // The eager step as one graph: the two global views as one batch through the online backbone and
  // head (one pass each), the local views as the step's second images (another size: one backbone
  // and head pass of their own), the momentum teacher on the global views; the centre is a buffer
  // updated in the graph and the epoch's teacher temperature is fed per step.
  compiled: {
    problem: () => undefined,
    stateful: {},
    secondImageSize: (options, [height, width]) =>
      options.localViews > 0 ? [localViewSize(options, height), localViewSize(options, width)] : undefined,
    scalars: () => ['teacherTemperature'],
    inputs: ({ views, progress }, options) => {
      const images = tf.concat(views.slice(0, 2), 0) as tf.Tensor4D; // [2B, H, W, C]
      return {
        images,
        targetImages: images,
        secondImages: views.length > 2 ? (tf.concat(views.slice(2), 0) as tf.Tensor4D) : undefined, // [L B, h, w, C]
        scalars: { teacherTemperature: teacherTemperatureAt(options, progress?.epoch ?? 0) },
      };
    },
    graph: (g, features, _targets, head, options, state, extra) => {
      const center = state?.buffers.center;
      const temperature = extra?.scalars.teacherTemperature;
      if (!state?.targetFeatures || !state.targetHead || !center || !temperature) {
        throw new Error('dino needs its momentum teacher, centre and teacher temperature in the graph');
      }
      const student = rowBlocksGraph(g, head('projection', features), 2); // 2 x [B, K]
      if (options.localViews > 0) {
        if (!extra.secondFeatures) throw new Error('dino needs its local views in the graph');
        student.push(...rowBlocksGraph(g, head('projection', extra.secondFeatures), options.localViews));
      }
      const teacherOutputs = state.targetHead('projection', state.targetFeatures); // [2B, K]
      return {
        loss: dinoLossGraph(
          g,
          rowBlocksGraph(g, teacherOutputs, 2),
          student,
          center,
          temperature,
          options.studentTemperature,
        ),
        metrics: { teacherTemperature: g.op('Identity', [temperature], { T: { type: DT_FLOAT } }) },
        embeddings: rowBlocksGraph(g, features, 2)[0],
        bufferUpdates: { center: dinoCenterGraph(g, center, teacherOutputs, options.centerMomentum) },
      };
    },
  },
};
