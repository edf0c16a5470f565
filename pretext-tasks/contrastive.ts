/**
 * Contrastive learning — SimCLR: Chen, Kornblith, Norouzi and Hinton, "A Simple
 * Framework for Contrastive Learning of Visual Representations", ICML 2020.
 *
 * The sentence implemented: "SimCLR learns representations by maximizing
 * agreement between differently augmented views of the same data example via a
 * contrastive loss in the latent space" — two views per image from the SimCLR
 * augmentation recipe, a shared backbone, an MLP projection head g(h), and the
 * NT-Xent loss over the other 2(B-1) examples of the batch as negatives.
 */
import * as tf from '@tensorflow/tfjs';
import { createHead } from '../src/backbones/heads.js';
import type { Head, HeadBlock } from '../src/backbones/types.js';
import { invalidOption } from '../src/util/errors.js';
import { simclrView } from './augmentations.js';
import { contrastiveAccuracy, ntXentLoss } from './losses.js';
import { checkInteger, checkNumber, checkOneOf, checkRange, mergeOptions, optionKey } from './options.js';
import type { PretextTask } from './types.js';

export interface ContrastiveOptions {
  /** Temperature t of NT-Xent; SimCLR: 0.5 on CIFAR-10, 0.1 with large batches on ImageNet. */
  temperature: number;
  /** Output size of the projection head (SimCLR: 128). */
  projectionDim: number;
  /** Hidden width of the projection MLP; 'featureDim' uses the backbone's feature size (SimCLR). */
  hiddenDim: number | 'featureDim';
  /** Random resized crop scale range (SimCLR: [0.08, 1]). */
  cropScale: [number, number];
  /** Colour distortion strength s (SimCLR: 1.0 on ImageNet, 0.5 on CIFAR-10). */
  colorJitterStrength: number;
  /** Gaussian blur: 'auto' only for inputs of 96 px or more, 'on', or 'off'. */
  blur: 'auto' | 'on' | 'off';
}

export interface ContrastiveHeads {
  projection: Head;
}

/** Defaults of the contrastive task (SimCLR's CIFAR-10 settings). */
export const CONTRASTIVE_DEFAULTS: Readonly<ContrastiveOptions> = Object.freeze({
  temperature: 0.5,
  projectionDim: 128,
  hiddenDim: 'featureDim' as const,
  cropScale: [0.08, 1] as [number, number],
  colorJitterStrength: 0.5,
  blur: 'auto' as const,
});

/** SimCLR's projection head g: linear (no bias) -> BatchNorm -> ReLU -> linear. */
export function projectionBlocks(hiddenDim: number, projectionDim: number): HeadBlock[] {
  return [{ linear: hiddenDim, bias: false }, { batchNorm: true }, { relu: true }, { linear: projectionDim }];
}

export const contrastiveTask: PretextTask<ContrastiveOptions, ContrastiveHeads> = {
  id: 'contrastive',
  paper:
    'Chen, Kornblith, Norouzi & Hinton, "A Simple Framework for Contrastive Learning of Visual Representations" (SimCLR), ICML 2020: ' +
    '"SimCLR learns representations by maximizing agreement between differently augmented views of the same data example via a contrastive loss in the latent space."',
  defaults: CONTRASTIVE_DEFAULTS,
  optionDocs: {
    temperature: 'Temperature of the NT-Xent loss, a number > 0 and <= 10 (default 0.5; SimCLR uses 0.1-0.5).',
    projectionDim: 'Output size of the projection head, integer >= 1 (default 128).',
    hiddenDim:
      'Hidden width of the projection MLP: an integer >= 1 or "featureDim" (default: the backbone feature size).',
    cropScale: 'Area range [low, high] within [0.01, 1] of the random resized crop (default [0.08, 1]).',
    colorJitterStrength:
      'Colour distortion strength s in [0, 2]: jitter brightness/contrast/saturation 0.8s, hue 0.2s with p 0.8 (default 0.5; 0 disables jitter).',
    blur: '"auto" (default: Gaussian blur with p 0.5 only for inputs of 96 px or more), "on" or "off".',
  },
  validate(options) {
    const merged = mergeOptions(CONTRASTIVE_DEFAULTS, options);
    const hidden = merged.hiddenDim;
    if (hidden !== 'featureDim' && !(typeof hidden === 'number' && Number.isInteger(hidden) && hidden >= 1)) {
      throw invalidOption(optionKey('hiddenDim'), 'an integer >= 1 or "featureDim"', hidden);
    }
    return {
      temperature: checkNumber('temperature', merged.temperature, 0, 10, true),
      projectionDim: checkInteger('projectionDim', merged.projectionDim, 1, 65536),
      hiddenDim: hidden as number | 'featureDim',
      cropScale: checkRange('cropScale', merged.cropScale, 0.01, 1),
      colorJitterStrength: checkNumber('colorJitterStrength', merged.colorJitterStrength, 0, 2),
      blur: checkOneOf('blur', merged.blur, ['auto', 'on', 'off'] as const),
    };
  },
  views(options, input) {
    const view = simclrView(input, options);
    return [view, simclrView(input, options)];
  },
  createHeads(options, featureDim, rng) {
    const hidden = options.hiddenDim === 'featureDim' ? featureDim : options.hiddenDim;
    const blocks = projectionBlocks(hidden, options.projectionDim);
    return { projection: createHead(blocks, featureDim, rng.derive('head', 'projection'), 'projection') };
  },
  headModules(heads) {
    return { projection: heads.projection };
  },
  step(ctx, options) {
    const [view1, view2] = ctx.views as tf.Tensor4D[]; // [B, H, W, C] each
    const batch = view1.shape[0];
    const features = ctx.backbone.features(tf.concat([view1, view2], 0), ctx.training); // [2B, D]
    const z = ctx.heads.projection.apply(features, ctx.training); // [2B, K]
    const z1 = tf.slice(z, [0, 0], [batch, -1]) as tf.Tensor2D; // [B, K]
    const z2 = tf.slice(z, [batch, 0], [batch, -1]) as tf.Tensor2D; // [B, K]
    return {
      loss: ntXentLoss(z1, z2, options.temperature),
      metrics: { accuracy: contrastiveAccuracy(z1, z2) },
      embeddings: tf.slice(features, [0, 0], [batch, -1]) as tf.Tensor2D,
    };
  },
};
