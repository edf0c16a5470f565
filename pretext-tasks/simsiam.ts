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
import { createNamedHead, mlpBlocks } from '../src/backbones/heads.js';
import type { HeadBlock } from '../src/backbones/types.js';
import type { SimclrAugmentationOptions } from './augmentations.js';
import { rowCosineGraph, simsiamLossGraph, vectorMeanGraph } from './graph-losses.js';
import { rowCosine, simsiamLoss } from './losses.js';
import { checkInteger, checkProjectorSizes } from './options.js';
import {
  compiledTwoViewStep,
  defineTwoViewTask,
  projectBothViews,
  projectionPredictionHeadModules,
  viewHalvesGraph,
} from './two-view.js';
import type { ProjectionPredictionHeads, ProjectorOptions } from './types.js';

/** SimSiam's options: the projector's output size is the predictor's too (SimSiam: 2048 out, 2048 hidden). */
export interface SimsiamOptions extends SimclrAugmentationOptions, ProjectorOptions {
  /** Bottleneck width of the predictor (SimSiam: 512, a quarter of projectionDim). */
  predictorHiddenDim: number;
}

/** SimSiam's projector: (linear, BN, ReLU) x 2, linear, BN; linear layers without bias (BN follows). */
export function simsiamProjectorBlocks(hiddenDim: number, projectionDim: number): HeadBlock[] {
  return mlpBlocks([hiddenDim, hiddenDim], projectionDim, {
    hiddenBias: false,
    outputBias: false,
    outputBatchNorm: true,
  });
}

export const simsiamTask = defineTwoViewTask<SimsiamOptions, ProjectionPredictionHeads>({
  id: 'simsiam',
  paper:
    'Chen & He, "Exploring Simple Siamese Representation Learning" (SimSiam), CVPR 2021: ' +
    '"Our hypothesis is that the stop-gradient operation is critical to prevent collapsing."',
  // No negatives: collapse is this method's failure mode; warn at half the healthy spread measured
  // on Fashion-MNIST (about 0.44 x 1/sqrt(D) after 64 steps, docs/results.md).
  collapseMinRatio: 0.2,
  defaults: { projectionDim: 2048, hiddenDim: 2048, predictorHiddenDim: 512 },
  optionDocs: {
    projectionDim: 'Output size of the projector and the predictor, integer >= 1 (default 2048).',
    hiddenDim: 'Hidden width of the projector, integer >= 1 (default 2048).',
    predictorHiddenDim: 'Bottleneck width of the predictor, integer >= 1 (default 512).',
  },
  check: (merged) => ({
    ...checkProjectorSizes(merged),
    predictorHiddenDim: checkInteger('predictorHiddenDim', merged.predictorHiddenDim, 1, 65536),
  }),
  createHeads(options, featureDim, rng) {
    const predictor = mlpBlocks([options.predictorHiddenDim], options.projectionDim, { hiddenBias: false });
    return {
      projection: createNamedHead(
        'projection',
        simsiamProjectorBlocks(options.hiddenDim, options.projectionDim),
        featureDim,
        rng,
      ),
      prediction: createNamedHead('prediction', predictor, options.projectionDim, rng),
    };
  },
  headModules: projectionPredictionHeadModules,
  step(ctx) {
    const [first, second] = projectBothViews(ctx); // z = projection [B, K]
    const p1 = ctx.heads.prediction.apply(first.projection, ctx.training); // [B, K]
    const p2 = ctx.heads.prediction.apply(second.projection, ctx.training); // [B, K]
    return {
      loss: simsiamLoss(p1, p2, first.projection, second.projection),
      metrics: { viewCosine: tf.mean(rowCosine(first.projection, second.projection)) as tf.Scalar },
      embeddings: first.features,
    };
  },
  // As step(): one backbone and projector pass per view, then the predictor once per view, in that order.
  compiled: compiledTwoViewStep('per-view', (g, features, head) => {
    const [f1, f2] = viewHalvesGraph(g, features); // [B, D] each
    const z1 = head('projection', f1); // [B, K]
    const z2 = head('projection', f2);
    const p1 = head('prediction', z1);
    const p2 = head('prediction', z2);
    return {
      loss: simsiamLossGraph(g, p1, p2, z1, z2),
      metrics: { viewCosine: vectorMeanGraph(g, rowCosineGraph(g, z1, z2)) },
    };
  }),
});

/** The defaults of every option, the shared augmentation ones included. */
export const SIMSIAM_DEFAULTS: Readonly<SimsiamOptions> = simsiamTask.defaults;
