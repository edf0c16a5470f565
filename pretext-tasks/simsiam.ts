/**
 * SimSiam — Chen and He, "Exploring Simple Siamese Representation Learning",
 * CVPR 2021.
 *
 * The sentence implemented: "Our hypothesis is that the stop-gradient operation
 * is critical to prevent collapsing" — two views through one backbone and
 * projector (three linear-BN layers, ReLU between), a predictor
 * (linear-BN-ReLU-linear, bottleneck) on one side, the negative cosine
 * similarity D(p1, stopgrad(z2)) / 2 + D(p2, stopgrad(z1)) / 2 (eq. 2), no
 * target network and no negatives. (The paper's last projector BatchNorm has no
 * affine parameters; here it has them, initialised to the identity.)
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
import { rowCosine, simsiamLoss } from './losses.js';
import { checkInteger, checkTwoViewAugmentation, mergeOptions } from './options.js';
import type { PretextTask } from './types.js';

export interface SimsiamOptions extends SimclrAugmentationOptions {
  /** Output size of the projector and the predictor (SimSiam: 2048). */
  projectionDim: number;
  /** Hidden width of the projector (SimSiam: 2048). */
  hiddenDim: number;
  /** Bottleneck width of the predictor (SimSiam: 512, a quarter of projectionDim). */
  predictorHiddenDim: number;
}

export interface SimsiamHeads {
  projection: Head;
  prediction: Head;
}

export const SIMSIAM_DEFAULTS: Readonly<SimsiamOptions> = Object.freeze({
  projectionDim: 2048,
  hiddenDim: 2048,
  predictorHiddenDim: 512,
  ...TWO_VIEW_AUGMENTATION_DEFAULTS,
});

/** SimSiam's projector: (linear, BN, ReLU) x 2, linear, BN; linear layers without bias (BN follows). */
export function simsiamProjectorBlocks(hiddenDim: number, projectionDim: number): HeadBlock[] {
  return [
    { linear: hiddenDim, bias: false },
    { batchNorm: true },
    { relu: true },
    { linear: hiddenDim, bias: false },
    { batchNorm: true },
    { relu: true },
    { linear: projectionDim, bias: false },
    { batchNorm: true },
  ];
}

export const simsiamTask: PretextTask<SimsiamOptions, SimsiamHeads> = {
  id: 'simsiam',
  paper:
    'Chen & He, "Exploring Simple Siamese Representation Learning" (SimSiam), CVPR 2021: ' +
    '"Our hypothesis is that the stop-gradient operation is critical to prevent collapsing."',
  // No negatives: collapse is this method's failure mode; warn at half the healthy spread measured
  // on Fashion-MNIST (about 0.44 x 1/sqrt(D) after 64 steps, docs/results.md).
  collapseMinRatio: 0.2,
  defaults: SIMSIAM_DEFAULTS,
  optionDocs: {
    projectionDim: 'Output size of the projector and the predictor, integer >= 1 (default 2048).',
    hiddenDim: 'Hidden width of the projector, integer >= 1 (default 2048).',
    predictorHiddenDim: 'Bottleneck width of the predictor, integer >= 1 (default 512).',
    ...TWO_VIEW_AUGMENTATION_DOCS,
  },
  validate(options) {
    const merged = mergeOptions(SIMSIAM_DEFAULTS, options);
    return {
      projectionDim: checkInteger('projectionDim', merged.projectionDim, 1, 65536),
      hiddenDim: checkInteger('hiddenDim', merged.hiddenDim, 1, 65536),
      predictorHiddenDim: checkInteger('predictorHiddenDim', merged.predictorHiddenDim, 1, 65536),
      ...checkTwoViewAugmentation(merged),
    };
  },
  views(options, input) {
    return [simclrView(input, options), simclrView(input, options)];
  },
  createHeads(options, featureDim, rng) {
    const predictor: HeadBlock[] = [
      { linear: options.predictorHiddenDim, bias: false },
      { batchNorm: true },
      { relu: true },
      { linear: options.projectionDim },
    ];
    return {
      projection: createHead(
        simsiamProjectorBlocks(options.hiddenDim, options.projectionDim),
        featureDim,
        rng.derive('head', 'projection'),
        'projection',
      ),
      prediction: createHead(predictor, options.projectionDim, rng.derive('head', 'prediction'), 'prediction'),
    };
  },
  headModules(heads) {
    return { projection: heads.projection, prediction: heads.prediction };
  },
  step(ctx) {
    const [view1, view2] = ctx.views as tf.Tensor4D[]; // [B, H, W, C] each
    const branch = (view: tf.Tensor4D) => {
      const features = ctx.backbone.features(view, ctx.training); // [B, D]
      const z = ctx.heads.projection.apply(features, ctx.training); // [B, K]
      return { features, z, p: ctx.heads.prediction.apply(z, ctx.training) }; // p [B, K]
    };
    const first = branch(view1);
    const second = branch(view2);
    return {
      loss: simsiamLoss(first.p, second.p, first.z, second.z),
      metrics: { viewCosine: tf.mean(rowCosine(first.z, second.z)) as tf.Scalar },
      embeddings: first.features,
    };
  },
};
