/**
 * VICReg — Bardes, Ponce and LeCun, "VICReg: Variance-Invariance-Covariance
 * Regularization for Self-Supervised Learning", ICLR 2022.
 *
 * The sentence implemented: "VICReg combines the variance term with a
 * decorrelation mechanism based on redundancy reduction and covariance
 * regularization" — two views through one backbone and expander (three linear
 * layers, BN and ReLU between); the loss is lambda s(Z, Z') + mu [v(Z) + v(Z')] / 2
 * + nu [c(Z) + c(Z')] (eq. 6, the official code's averaging), with the
 * invariance (MSE), variance (hinge on the std at 1) and covariance
 * (off-diagonal squares / D) terms.
 */
import type * as tf from '@tensorflow/tfjs';
import { createHead, mlpBlocks } from '../src/backbones/heads.js';
import type { Head } from '../src/backbones/types.js';
import {
  type SimclrAugmentationOptions,
  simclrView,
  TWO_VIEW_AUGMENTATION_DEFAULTS,
  TWO_VIEW_AUGMENTATION_DOCS,
} from './augmentations.js';
import { vicregTerms, weightedVicreg } from './losses.js';
import { checkInteger, checkNumber, checkTwoViewAugmentation, mergeOptions } from './options.js';
import type { PretextTask } from './types.js';

export interface VicregOptions extends SimclrAugmentationOptions {
  /** Output size of the expander (VICReg: 8192). */
  projectionDim: number;
  /** Hidden width of the expander (VICReg: 8192). */
  hiddenDim: number;
  /** lambda, weight of the invariance term (VICReg: 25). */
  invarianceWeight: number;
  /** mu, weight of the variance term (VICReg: 25). */
  varianceWeight: number;
  /** nu, weight of the covariance term (VICReg: 1). */
  covarianceWeight: number;
}

export interface VicregHeads {
  projection: Head;
}

export const VICREG_DEFAULTS: Readonly<VicregOptions> = Object.freeze({
  projectionDim: 8192,
  hiddenDim: 8192,
  invarianceWeight: 25,
  varianceWeight: 25,
  covarianceWeight: 1,
  ...TWO_VIEW_AUGMENTATION_DEFAULTS,
});

export const vicregTask: PretextTask<VicregOptions, VicregHeads> = {
  id: 'vicreg',
  paper:
    'Bardes, Ponce & LeCun, "VICReg: Variance-Invariance-Covariance Regularization for Self-Supervised Learning", ICLR 2022: ' +
    '"VICReg combines the variance term with a decorrelation mechanism based on redundancy reduction and covariance regularization."',
  defaults: VICREG_DEFAULTS,
  optionDocs: {
    projectionDim: 'Output size of the expander, integer >= 1 (default 8192; 2048 for small budgets).',
    hiddenDim: 'Hidden width of the expander, integer >= 1 (default 8192).',
    invarianceWeight: 'lambda, weight of the invariance (MSE) term, a number in [0, 1000] (default 25).',
    varianceWeight: 'mu, weight of the variance term, a number in [0, 1000] (default 25).',
    covarianceWeight: 'nu, weight of the covariance term, a number in [0, 1000] (default 1).',
    ...TWO_VIEW_AUGMENTATION_DOCS,
  },
  validate(options) {
    const merged = mergeOptions(VICREG_DEFAULTS, options);
    return {
      projectionDim: checkInteger('projectionDim', merged.projectionDim, 1, 65536),
      hiddenDim: checkInteger('hiddenDim', merged.hiddenDim, 1, 65536),
      invarianceWeight: checkNumber('invarianceWeight', merged.invarianceWeight, 0, 1000),
      varianceWeight: checkNumber('varianceWeight', merged.varianceWeight, 0, 1000),
      covarianceWeight: checkNumber('covarianceWeight', merged.covarianceWeight, 0, 1000),
      ...checkTwoViewAugmentation(merged),
    };
  },
  views(options, input) {
    return [simclrView(input, options), simclrView(input, options)];
  },
  createHeads(options, featureDim, rng) {
    const blocks = mlpBlocks([options.hiddenDim, options.hiddenDim], options.projectionDim);
    return { projection: createHead(blocks, featureDim, rng.derive('head', 'projection'), 'projection') };
  },
  headModules(heads) {
    return { projection: heads.projection };
  },
  step(ctx, options) {
    const [view1, view2] = ctx.views as tf.Tensor4D[]; // [B, H, W, C] each
    const features1 = ctx.backbone.features(view1, ctx.training); // [B, D]
    const z1 = ctx.heads.projection.apply(features1, ctx.training); // [B, K]
    const z2 = ctx.heads.projection.apply(ctx.backbone.features(view2, ctx.training), ctx.training); // [B, K]
    const terms = vicregTerms(z1, z2);
    return {
      loss: weightedVicreg(terms, {
        invariance: options.invarianceWeight,
        variance: options.varianceWeight,
        covariance: options.covarianceWeight,
      }),
      metrics: { invariance: terms.invariance, variance: terms.variance, covariance: terms.covariance },
      embeddings: features1,
    };
  },
};
