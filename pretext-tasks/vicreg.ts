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
import { createNamedHead, mlpBlocks } from '../src/backbones/heads.js';
import type { SimclrAugmentationOptions } from './augmentations.js';
import { vicregTermsGraph, weightedVicregGraph } from './graph-losses.js';
import { vicregTerms, weightedVicreg } from './losses.js';
import { checkNumber, checkProjectorSizes } from './options.js';
import { compiledTwoViewStep, defineTwoViewTask, projectBothViews, viewHalvesGraph } from './two-view.js';
import type { ProjectionHeads, ProjectorOptions } from './types.js';

/** VICReg's options (the projector is its expander: 8192 out, 8192 hidden). */
export interface VicregOptions extends SimclrAugmentationOptions, ProjectorOptions {
  /** lambda, weight of the invariance term (VICReg: 25). */
  invarianceWeight: number;
  /** mu, weight of the variance term (VICReg: 25). */
  varianceWeight: number;
  /** nu, weight of the covariance term (VICReg: 1). */
  covarianceWeight: number;
}

export const vicregTask = defineTwoViewTask<VicregOptions, ProjectionHeads>({
  id: 'vicreg',
  paper:
    'Bardes, Ponce & LeCun, "VICReg: Variance-Invariance-Covariance Regularization for Self-Supervised Learning", ICLR 2022: ' +
    '"VICReg combines the variance term with a decorrelation mechanism based on redundancy reduction and covariance regularization."',
  defaults: { projectionDim: 8192, hiddenDim: 8192, invarianceWeight: 25, varianceWeight: 25, covarianceWeight: 1 },
  optionDocs: {
    projectionDim: 'Output size of the expander, integer >= 1 (default 8192; 2048 for small budgets).',
    hiddenDim: 'Hidden width of the expander, integer >= 1 (default 8192).',
    invarianceWeight: 'lambda, weight of the invariance (MSE) term, a number in [0, 1000] (default 25).',
    varianceWeight: 'mu, weight of the variance term, a number in [0, 1000] (default 25).',
    covarianceWeight: 'nu, weight of the covariance term, a number in [0, 1000] (default 1).',
  },
  check: (merged) => ({
    ...checkProjectorSizes(merged),
    invarianceWeight: checkNumber('invarianceWeight', merged.invarianceWeight, 0, 1000),
    varianceWeight: checkNumber('varianceWeight', merged.varianceWeight, 0, 1000),
    covarianceWeight: checkNumber('covarianceWeight', merged.covarianceWeight, 0, 1000),
  }),
  createHeads(options, featureDim, rng) {
    const blocks = mlpBlocks([options.hiddenDim, options.hiddenDim], options.projectionDim);
    return { projection: createNamedHead('projection', blocks, featureDim, rng) };
  },
  step(ctx, options) {
    const [first, second] = projectBothViews(ctx);
    const terms = vicregTerms(first.projection, second.projection);
    return {
      loss: weightedVicreg(terms, {
        invariance: options.invarianceWeight,
        variance: options.varianceWeight,
        covariance: options.covarianceWeight,
      }),
      metrics: { invariance: terms.invariance, variance: terms.variance, covariance: terms.covariance },
      embeddings: first.features,
    };
  },
  // As step(): one backbone and expander pass per view (projectBothViews).
  compiled: compiledTwoViewStep('per-view', (g, features, head, options) => {
    const [f1, f2] = viewHalvesGraph(g, features); // [B, D] each
    const terms = vicregTermsGraph(g, head('projection', f1), head('projection', f2));
    return {
      loss: weightedVicregGraph(g, terms, {
        invariance: options.invarianceWeight,
        variance: options.varianceWeight,
        covariance: options.covarianceWeight,
      }),
      metrics: { invariance: terms.invariance, variance: terms.variance, covariance: terms.covariance },
    };
  }),
});

/** The defaults of every option, the shared augmentation ones included. */
export const VICREG_DEFAULTS: Readonly<VicregOptions> = vicregTask.defaults;
