/**
 * Barlow Twins — Zbontar, Jing, Misra, LeCun and Deny, "Barlow Twins:
 * Self-Supervised Learning via Redundancy Reduction", ICML 2021.
 *
 * The sentence implemented: "The objective function measures the
 * cross-correlation matrix between the embeddings of two identical networks fed
 * with distorted versions of a batch of samples, and tries to make this matrix
 * close to the identity." Two views through one backbone and projector (three
 * linear layers, BN and ReLU between); the embeddings are standardised per
 * dimension over the batch; the loss is sum (1 - C_ii)² + lambda sum_{i!=j} C_ij² (eq. 1).
 */
import * as tf from '@tensorflow/tfjs';
import { createHead } from '../src/backbones/heads.js';
import type { Head, HeadBlock } from '../src/backbones/types.js';
import {
  type SimclrAugmentationOptions,
  simclrView,
  TWO_VIEW_AUGMENTATION_DEFAULTS,
  TWO_VIEW_AUGMENTATION_DOCS,
} from './augmentations.js';
import { barlowTwinsObjective, crossCorrelation, diagonalOf } from './losses.js';
import { checkInteger, checkNumber, checkTwoViewAugmentation, mergeOptions } from './options.js';
import type { PretextTask } from './types.js';

export interface BarlowTwinsOptions extends SimclrAugmentationOptions {
  /** Output size of the projector (Barlow Twins: 8192). */
  projectionDim: number;
  /** Hidden width of the projector (Barlow Twins: 8192). */
  hiddenDim: number;
  /** Weight of the redundancy-reduction (off-diagonal) term (Barlow Twins: 0.0051). */
  lambda: number;
}

export interface BarlowTwinsHeads {
  projection: Head;
}

export const BARLOW_TWINS_DEFAULTS: Readonly<BarlowTwinsOptions> = Object.freeze({
  projectionDim: 8192,
  hiddenDim: 8192,
  lambda: 0.0051,
  ...TWO_VIEW_AUGMENTATION_DEFAULTS,
});

/** The Barlow Twins projector: (linear, BN, ReLU) x 2, then linear; no biases. */
export function barlowProjectorBlocks(hiddenDim: number, projectionDim: number): HeadBlock[] {
  return [
    { linear: hiddenDim, bias: false },
    { batchNorm: true },
    { relu: true },
    { linear: hiddenDim, bias: false },
    { batchNorm: true },
    { relu: true },
    { linear: projectionDim, bias: false },
  ];
}

export const barlowTwinsTask: PretextTask<BarlowTwinsOptions, BarlowTwinsHeads> = {
  id: 'barlow-twins',
  paper:
    'Zbontar, Jing, Misra, LeCun & Deny, "Barlow Twins: Self-Supervised Learning via Redundancy Reduction", ICML 2021: ' +
    '"The objective function measures the cross-correlation matrix between the embeddings of two identical networks fed with distorted versions of a batch of samples, and tries to make this matrix close to the identity."',
  defaults: BARLOW_TWINS_DEFAULTS,
  optionDocs: {
    projectionDim: 'Output size of the projector, integer >= 1 (default 8192; 2048 for small budgets).',
    hiddenDim: 'Hidden width of the projector, integer >= 1 (default 8192).',
    lambda: 'Weight of the off-diagonal (redundancy) term, a number in [0, 1] (default 0.0051).',
    ...TWO_VIEW_AUGMENTATION_DOCS,
  },
  validate(options) {
    const merged = mergeOptions(BARLOW_TWINS_DEFAULTS, options);
    return {
      projectionDim: checkInteger('projectionDim', merged.projectionDim, 1, 65536),
      hiddenDim: checkInteger('hiddenDim', merged.hiddenDim, 1, 65536),
      lambda: checkNumber('lambda', merged.lambda, 0, 1),
      ...checkTwoViewAugmentation(merged),
    };
  },
  views(options, input) {
    return [simclrView(input, options), simclrView(input, options)];
  },
  createHeads(options, featureDim, rng) {
    return {
      projection: createHead(
        barlowProjectorBlocks(options.hiddenDim, options.projectionDim),
        featureDim,
        rng.derive('head', 'projection'),
        'projection',
      ),
    };
  },
  headModules(heads) {
    return { projection: heads.projection };
  },
  step(ctx, options) {
    const [view1, view2] = ctx.views as tf.Tensor4D[]; // [B, H, W, C] each
    const features1 = ctx.backbone.features(view1, ctx.training); // [B, D]
    const z1 = ctx.heads.projection.apply(features1, ctx.training); // [B, K]
    const z2 = ctx.heads.projection.apply(ctx.backbone.features(view2, ctx.training), ctx.training); // [B, K]
    const c = crossCorrelation(z1, z2); // [K, K]
    return {
      loss: barlowTwinsObjective(c, options.lambda),
      metrics: { meanDiagonal: tf.mean(diagonalOf(c)) as tf.Scalar },
      embeddings: features1,
    };
  },
};
