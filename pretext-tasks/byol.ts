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
import { createNamedHead, mlpBlocks } from '../src/backbones/heads.js';
import type { SimclrAugmentationOptions } from './augmentations.js';
import { byolLossGraph, rowCosineGraph, vectorMeanGraph } from './graph-losses.js';
import { byolLoss, rowCosine } from './losses.js';
import { checkMomentumRange, checkProjectorSizes } from './options.js';
import {
  bothViews,
  defineTwoViewTask,
  projectionPredictionHeadModules,
  projectionTarget,
  viewHalvesGraph,
} from './two-view.js';
import type { MomentumTargetOptions, ProjectionPredictionHeads, ProjectorOptions } from './types.js';

/** BYOL's options: the projector's sizes serve the predictor too (BYOL: 256 out, 4096 hidden; m from 0.996 to 1). */
export interface ByolOptions extends SimclrAugmentationOptions, ProjectorOptions, MomentumTargetOptions {}

export const byolTask = defineTwoViewTask<ByolOptions, ProjectionPredictionHeads>({
  id: 'byol',
  paper:
    'Grill et al., "Bootstrap Your Own Latent: A New Approach to Self-Supervised Learning" (BYOL), NeurIPS 2020: ' +
    '"From an augmented view of an image, we train the online network to predict the target network representation of the same image under a different augmented view. At the same time, we update the target network with a slow-moving average of the online network."',
  // No negatives: collapse is this method's failure mode; warn at half the healthy spread measured
  // on Fashion-MNIST (about 0.44 x 1/sqrt(D) after 64 steps, docs/results.md).
  collapseMinRatio: 0.2,
  defaults: { projectionDim: 256, hiddenDim: 4096, momentum: 0.996, momentumEnd: 1 },
  optionDocs: {
    projectionDim: 'Output size of the projector and the predictor, integer >= 1 (default 256).',
    hiddenDim: 'Hidden width of the projector and predictor MLPs, integer >= 1 (default 4096; 1024 for small budgets).',
    momentum: 'Target momentum at the first step, in [0, 1] (default 0.996); it rises to momentumEnd along a cosine.',
    momentumEnd: 'Target momentum at the last step, in [momentum, 1] (default 1).',
  },
  check: (merged) => ({ ...checkProjectorSizes(merged), ...checkMomentumRange(merged) }),
  createHeads(options, featureDim, rng) {
    const blocks = mlpBlocks([options.hiddenDim], options.projectionDim);
    return {
      projection: createNamedHead('projection', blocks, featureDim, rng),
      prediction: createNamedHead('prediction', blocks, options.projectionDim, rng),
    };
  },
  headModules: projectionPredictionHeadModules,
  state(options) {
    return { target: projectionTarget(options) };
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
  // The eager step as one graph: each view through the online network (one backbone pass per view),
  // each view through the target's backbone and projector (training-mode BatchNorm, as the eager
  // target); the loop's target momentum is fed, and the EMA follows the update in the graph.
  compiled: {
    problem: () => undefined,
    forwardPasses: () => 2,
    stateful: { targetForwardPasses: () => 2 },
    inputs: ({ views }) => {
      const images = bothViews(views); // [2B, H, W, C]
      return { images, targetImages: images };
    },
    graph: (g, features, _targets, head, _options, state) => {
      if (!state?.targetFeatures || !state.targetHead) throw new Error('byol needs its momentum target in the graph');
      const [f1, f2] = viewHalvesGraph(g, features); // [B, D] each
      const p1 = head('prediction', head('projection', f1)); // [B, K]
      const p2 = head('prediction', head('projection', f2));
      const [t1, t2] = viewHalvesGraph(g, state.targetFeatures);
      const z1 = state.targetHead('projection', t1); // [B, K]
      const z2 = state.targetHead('projection', t2);
      return {
        loss: byolLossGraph(g, p1, p2, z1, z2),
        metrics: { targetCosine: vectorMeanGraph(g, rowCosineGraph(g, p1, z2)) },
        embeddings: f1,
      };
    },
  },
});

/** The defaults of every option, the shared augmentation ones included. */
export const BYOL_DEFAULTS: Readonly<ByolOptions> = byolTask.defaults;
