/**
 * BYOL — Grill, Strub, Altché, Tallec, Richemond et al., "Bootstrap Your Own
 * Latent: A New Approach to Self-Supervised Learning", NeurIPS 2020.
 *
 * The sentence implemented: "From an augmented view of an image, we train the
 * online network to predict the target network representation of the same image
 * under a different augmented view. At the same time, we update the target
 * network with a slow-moving average of the online network." Online: backbone,
 * projector (linear-BN-ReLU-linear), predictor (same shape); target: momentum
 * copies of backbone and projector (the loop's TaskState, m from 0.996 to 1 along
 * a cosine); loss: the normalised MSE between the online prediction of one view
 * and the target projection of the other, symmetrised (eq. 2, L + L~).
 */
import * as tf from '@tensorflow/tfjs';
import { createHead, mlpBlocks } from '../src/backbones/heads.js';
import type { Head } from '../src/backbones/types.js';
import {
  type SimclrAugmentationOptions,
  simclrView,
  TWO_VIEW_AUGMENTATION_DEFAULTS,
  TWO_VIEW_AUGMENTATION_DOCS,
} from './augmentations.js';
import { byolLoss, rowCosine } from './losses.js';
import { checkInteger, checkNumber, checkTwoViewAugmentation, mergeOptions } from './options.js';
import type { PretextTask } from './types.js';

export interface ByolOptions extends SimclrAugmentationOptions {
  /** Output size of the projector and the predictor (BYOL: 256). */
  projectionDim: number;
  /** Hidden width of the projector and predictor MLPs (BYOL: 4096). */
  hiddenDim: number;
  /** Target momentum at the first step, rising to `momentumEnd` along a cosine (BYOL: 0.996). */
  momentum: number;
  /** Target momentum at the last step (BYOL: 1). */
  momentumEnd: number;
}

export interface ByolHeads {
  projection: Head;
  prediction: Head;
}

export const BYOL_DEFAULTS: Readonly<ByolOptions> = Object.freeze({
  projectionDim: 256,
  hiddenDim: 4096,
  momentum: 0.996,
  momentumEnd: 1,
  ...TWO_VIEW_AUGMENTATION_DEFAULTS,
});

export const byolTask: PretextTask<ByolOptions, ByolHeads> = {
  id: 'byol',
  paper:
    'Grill et al., "Bootstrap Your Own Latent: A New Approach to Self-Supervised Learning" (BYOL), NeurIPS 2020: ' +
    '"From an augmented view of an image, we train the online network to predict the target network representation of the same image under a different augmented view. At the same time, we update the target network with a slow-moving average of the online network."',
  // No negatives: collapse is this method's failure mode; warn at half the healthy spread measured
  // on Fashion-MNIST (about 0.44 x 1/sqrt(D) after 64 steps, docs/results.md).
  collapseMinRatio: 0.2,
  defaults: BYOL_DEFAULTS,
  optionDocs: {
    projectionDim: 'Output size of the projector and the predictor, integer >= 1 (default 256).',
    hiddenDim: 'Hidden width of the projector and predictor MLPs, integer >= 1 (default 4096; 1024 for small budgets).',
    momentum: 'Target momentum at the first step, in [0, 1] (default 0.996); it rises to momentumEnd along a cosine.',
    momentumEnd: 'Target momentum at the last step, in [momentum, 1] (default 1).',
    ...TWO_VIEW_AUGMENTATION_DOCS,
  },
  validate(options) {
    const merged = mergeOptions(BYOL_DEFAULTS, options);
    const momentum = checkNumber('momentum', merged.momentum, 0, 1);
    return {
      projectionDim: checkInteger('projectionDim', merged.projectionDim, 1, 65536),
      hiddenDim: checkInteger('hiddenDim', merged.hiddenDim, 1, 65536),
      momentum,
      momentumEnd: checkNumber('momentumEnd', merged.momentumEnd, momentum, 1),
      ...checkTwoViewAugmentation(merged),
    };
  },
  views(options, input) {
    return [simclrView(input, options), simclrView(input, options)];
  },
  createHeads(options, featureDim, rng) {
    const blocks = mlpBlocks([options.hiddenDim], options.projectionDim);
    return {
      projection: createHead(blocks, featureDim, rng.derive('head', 'projection'), 'projection'),
      prediction: createHead(blocks, options.projectionDim, rng.derive('head', 'prediction'), 'prediction'),
    };
  },
  headModules(heads) {
    return { projection: heads.projection, prediction: heads.prediction };
  },
  state(options) {
    return { target: { heads: ['projection'], momentumStart: options.momentum, momentumEnd: options.momentumEnd } };
  },
  step(ctx) {
    const [view1, view2] = ctx.views as tf.Tensor4D[]; // [B, H, W, C] each
    const target = ctx.target;
    if (!target?.heads.projection) throw new Error('byol needs its momentum target (run it through the training loop)');
    const online = (view: tf.Tensor4D) => {
      const features = ctx.backbone.features(view, ctx.training); // [B, D]
      const prediction = ctx.heads.prediction.apply(ctx.heads.projection.apply(features, ctx.training), ctx.training);
      return { features, prediction }; // prediction [B, K]
    };
    const targetProjection = (view: tf.Tensor4D) =>
      target.heads.projection!.apply(target.backbone.features(view, ctx.training), ctx.training); // [B, K]
    const first = online(view1);
    const second = online(view2);
    const z1 = targetProjection(view1);
    const z2 = targetProjection(view2);
    return {
      loss: byolLoss(first.prediction, second.prediction, z1, z2),
      metrics: { targetCosine: tf.mean(rowCosine(first.prediction, z2)) as tf.Scalar },
      embeddings: first.features,
    };
  },
};
