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
import { createNamedHead, mlpBlocks } from '../src/backbones/heads.js';
import type { HeadBlock } from '../src/backbones/types.js';
import type { SimclrAugmentationOptions } from './augmentations.js';
import { barlowTwinsObjectiveGraph, crossCorrelationGraph, diagonalGraph, vectorMeanGraph } from './graph-losses.js';
import { barlowTwinsObjective, crossCorrelation, diagonalOf } from './losses.js';
import { checkNumber, checkProjectorSizes } from './options.js';
import { compiledTwoViewStep, defineTwoViewTask, projectBothViews, viewHalvesGraph } from './two-view.js';
import type { ProjectionHeads, ProjectorOptions } from './types.js';

/** Barlow Twins' options (projector: 8192 out, 8192 hidden). */
export interface BarlowTwinsOptions extends SimclrAugmentationOptions, ProjectorOptions {
  /** Weight of the redundancy-reduction (off-diagonal) term (Barlow Twins: 0.0051). */
  lambda: number;
}

/** The Barlow Twins projector: (linear, BN, ReLU) x 2, then linear; no biases. */
export function barlowProjectorBlocks(hiddenDim: number, projectionDim: number): HeadBlock[] {
  return mlpBlocks([hiddenDim, hiddenDim], projectionDim, { hiddenBias: false, outputBias: false });
}

export const barlowTwinsTask = defineTwoViewTask<BarlowTwinsOptions, ProjectionHeads>({
  id: 'barlow-twins',
  paper:
    'Zbontar, Jing, Misra, LeCun & Deny, "Barlow Twins: Self-Supervised Learning via Redundancy Reduction", ICML 2021: ' +
    '"The objective function measures the cross-correlation matrix between the embeddings of two identical networks fed with distorted versions of a batch of samples, and tries to make this matrix close to the identity."',
  defaults: { projectionDim: 8192, hiddenDim: 8192, lambda: 0.0051 },
  optionDocs: {
    projectionDim: 'Output size of the projector, integer >= 1 (default 8192; 2048 for small budgets).',
    hiddenDim: 'Hidden width of the projector, integer >= 1 (default 8192).',
    lambda: 'Weight of the off-diagonal (redundancy) term, a number in [0, 1] (default 0.0051).',
  },
  check: (merged) => ({ ...checkProjectorSizes(merged), lambda: checkNumber('lambda', merged.lambda, 0, 1) }),
  createHeads(options, featureDim, rng) {
    return {
      projection: createNamedHead(
        'projection',
        barlowProjectorBlocks(options.hiddenDim, options.projectionDim),
        featureDim,
        rng,
      ),
    };
  },
  step(ctx, options) {
    const [first, second] = projectBothViews(ctx);
    const c = crossCorrelation(first.projection, second.projection); // [K, K]
    return {
      loss: barlowTwinsObjective(c, options.lambda),
      metrics: { meanDiagonal: tf.mean(diagonalOf(c)) as tf.Scalar },
      embeddings: first.features,
    };
  },
  // As step(): one backbone and projector pass per view (projectBothViews).
  compiled: compiledTwoViewStep('per-view', (g, features, head, options) => {
    const [f1, f2] = viewHalvesGraph(g, features); // [B, D] each
    const c = crossCorrelationGraph(g, head('projection', f1), head('projection', f2)); // [K, K]
    return {
      loss: barlowTwinsObjectiveGraph(g, c, options.lambda),
      metrics: { meanDiagonal: vectorMeanGraph(g, diagonalGraph(g, c)) },
    };
  }),
});

/** The defaults of every option, the shared augmentation ones included. */
export const BARLOW_TWINS_DEFAULTS: Readonly<BarlowTwinsOptions> = barlowTwinsTask.defaults;
