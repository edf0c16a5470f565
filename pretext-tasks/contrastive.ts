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
import { createNamedHead, mlpBlocks } from '../src/backbones/heads.js';
import type { HeadBlock } from '../src/backbones/types.js';
import type { SimclrAugmentationOptions } from './augmentations.js';
import { ntXentGraph } from './graph-losses.js';
import { contrastiveAccuracy, ntXentLoss } from './losses.js';
import { checkContrastiveHead } from './options.js';
import { compiledTwoViewStep, defineTwoViewTask, viewHalvesGraph } from './two-view.js';
import type { ContrastiveHeadOptions, ProjectionHeads } from './types.js';

/** SimCLR's options (temperature t of NT-Xent: 0.5 on CIFAR-10, 0.1 with large batches on ImageNet; head 128 out); the augmentation ones (cropScale, colorJitterStrength, blur) are those of every two-view method. */
export interface ContrastiveOptions extends SimclrAugmentationOptions, ContrastiveHeadOptions {}

/** SimCLR's projection head g: linear (no bias) -> BatchNorm -> ReLU -> linear. */
export function projectionBlocks(hiddenDim: number, projectionDim: number): HeadBlock[] {
  return mlpBlocks([hiddenDim], projectionDim, { hiddenBias: false });
}

export const contrastiveTask = defineTwoViewTask<ContrastiveOptions, ProjectionHeads>({
  id: 'contrastive',
  paper:
    'Chen, Kornblith, Norouzi & Hinton, "A Simple Framework for Contrastive Learning of Visual Representations" (SimCLR), ICML 2020: ' +
    '"SimCLR learns representations by maximizing agreement between differently augmented views of the same data example via a contrastive loss in the latent space."',
  defaults: {
    temperature: 0.5,
    projectionDim: 128,
    hiddenDim: 'featureDim' as const,
    cropScale: [0.08, 1] as [number, number],
    colorJitterStrength: 0.5,
    blur: 'auto' as const,
  },
  optionDocs: {
    temperature: 'Temperature of the NT-Xent loss, a number > 0 and <= 10 (default 0.5; SimCLR uses 0.1-0.5).',
    projectionDim: 'Output size of the projection head, integer >= 1 (default 128).',
    hiddenDim:
      'Hidden width of the projection MLP: an integer >= 1 or "featureDim" (default: the backbone feature size).',
    cropScale: 'Area range [low, high] within [0.01, 1] of the random resized crop (default [0.08, 1]).',
  },
  check: (merged) => ({ ...checkContrastiveHead(merged) }),
  createHeads(options, featureDim, rng) {
    const hidden = options.hiddenDim === 'featureDim' ? featureDim : options.hiddenDim;
    const blocks = projectionBlocks(hidden, options.projectionDim);
    return { projection: createNamedHead('projection', blocks, featureDim, rng) };
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
  // As step(): both views in one backbone and projector pass (BatchNorm statistics over 2B).
  compiled: compiledTwoViewStep('one-batch', (g, features, head, options) => {
    const [z1, z2] = viewHalvesGraph(g, head('projection', features)); // [B, K] each
    const { loss, accuracy } = ntXentGraph(g, z1, z2, options.temperature);
    return { loss, metrics: { accuracy } };
  }),
});

/** The defaults of every option, the shared augmentation ones included. */
export const CONTRASTIVE_DEFAULTS: Readonly<ContrastiveOptions> = contrastiveTask.defaults;
