/**
 * MoCo v2 — He, Fan, Wu, Xie and Girshick, "Momentum Contrast for Unsupervised
 * Visual Representation Learning", CVPR 2020; Chen, Fan, Girshick and He,
 * "Improved Baselines with Momentum Contrastive Learning", 2020 (v2: MLP head,
 * SimCLR-style augmentation with blur, temperature 0.2).
 *
 * The sentence implemented: "We maintain the dictionary as a queue of data
 * samples: the encoded representations of the current mini-batch are enqueued,
 * and the oldest are dequeued." Queries come from the backbone and MLP head
 * (linear-ReLU-linear); keys from their momentum copies (the loop's TaskState);
 * the loss is InfoNCE of each query against its key and the queue's negatives
 * (eq. 1); after the step the keys replace the oldest rows of the queue.
 */
import * as tf from '@tensorflow/tfjs';
import { createNamedHead } from '../src/backbones/heads.js';
import { invalidOption } from '../src/util/errors.js';
import type { SimclrAugmentationOptions } from './augmentations.js';
import { enqueueGraph, infoNceGraph } from './graph-losses.js';
import { accuracyFromLogits, crossEntropyFromLogits, enqueue, infoNceLogits, stopGradient } from './losses.js';
import { checkContrastiveHead, checkInteger, checkMomentumRange, optionKey } from './options.js';
import { defineTwoViewTask, projectionTarget } from './two-view.js';
import type { ContrastiveHeadOptions, MomentumTargetOptions, ProjectionHeads } from './types.js';

/** MoCo v2's options (temperature 0.2, head 128 out, hidden featureDim); the key encoder is the momentum target (MoCo: m 0.999, constant; 1 as momentumEnd gives BYOL's cosine rise). */
export interface MocoOptions extends SimclrAugmentationOptions, ContrastiveHeadOptions, MomentumTargetOptions {
  /** Negatives kept in the queue, K (MoCo: 65536; must be a multiple of the batch size for whole-batch slots). */
  queueSize: number;
}

export const mocoTask = defineTwoViewTask<MocoOptions, ProjectionHeads>({
  id: 'moco',
  paper:
    'He, Fan, Wu, Xie & Girshick, "Momentum Contrast for Unsupervised Visual Representation Learning" (MoCo), CVPR 2020, with the v2 changes of Chen, Fan, Girshick & He, "Improved Baselines with Momentum Contrastive Learning", 2020: ' +
    '"We maintain the dictionary as a queue of data samples: the encoded representations of the current mini-batch are enqueued, and the oldest are dequeued."',
  defaults: {
    temperature: 0.2,
    projectionDim: 128,
    hiddenDim: 'featureDim' as const,
    queueSize: 65536,
    momentum: 0.999,
    momentumEnd: 0.999,
  },
  optionDocs: {
    temperature: 'Temperature of InfoNCE, a number > 0 and <= 10 (default 0.2).',
    projectionDim: 'Output size of the MLP head, integer >= 1 (default 128).',
    hiddenDim: 'Hidden width of the MLP head: an integer >= 1 or "featureDim" (default: the backbone feature size).',
    queueSize: 'Negatives in the queue, integer >= 1 and at least the batch size (default 65536; 4096 for small data).',
    momentum: 'Key-encoder momentum at the first step, in [0, 1] (default 0.999).',
    momentumEnd: 'Key-encoder momentum at the last step, in [momentum, 1] (default 0.999: constant, as MoCo).',
  },
  check: (merged) => ({
    ...checkContrastiveHead(merged),
    queueSize: checkInteger('queueSize', merged.queueSize, 1, 1 << 20),
    ...checkMomentumRange(merged),
  }),
  createHeads(options, featureDim, rng) {
    const hidden = options.hiddenDim === 'featureDim' ? featureDim : options.hiddenDim;
    const blocks = [{ linear: hidden }, { relu: true as const }, { linear: options.projectionDim }];
    return { projection: createNamedHead('projection', blocks, featureDim, rng) };
  },
  state(options) {
    return {
      target: projectionTarget(options),
      buffers: {
        queue: { shape: [options.queueSize, options.projectionDim], init: 'unit-rows' },
        pointer: { shape: [1], dtype: 'int32', init: 'zeros' },
      },
    };
  },
  step(ctx, options) {
    const [view1, view2] = ctx.views as tf.Tensor4D[]; // [B, H, W, C] each
    const target = ctx.target;
    const queue = ctx.buffers?.queue as tf.Tensor2D | undefined; // [K, P]
    const pointer = ctx.buffers?.pointer as tf.Tensor1D | undefined; // [1] int32
    if (!target?.heads.projection || !queue || !pointer) {
      throw new Error('moco needs its key encoder and queue (run it through the training loop)');
    }
    const batch = view1.shape[0];
    if (batch > options.queueSize) {
      throw invalidOption(optionKey('queueSize'), `at least the batch size (${batch})`, options.queueSize);
    }
    const features = ctx.backbone.features(view1, ctx.training); // [B, D]
    const q = ctx.heads.projection.apply(features, ctx.training); // [B, P]
    const k = stopGradient(target.heads.projection.apply(target.backbone.features(view2, ctx.training), ctx.training));
    const logits = infoNceLogits(q, k, queue, options.temperature); // [B, 1 + K]
    const positives = tf.zeros([batch], 'int32') as tf.Tensor1D;
    const next = enqueue(queue, k, pointer);
    return {
      loss: crossEntropyFromLogits(logits, positives),
      metrics: { accuracy: accuracyFromLogits(logits, positives) },
      embeddings: features,
      bufferUpdates: { queue: next.queue, pointer: next.pointer },
    };
  },
  // The eager step as one graph: view 1 through the online backbone and head, view 2 through the key
  // encoder (training-mode BatchNorm, as the eager one); the queue and its pointer are session
  // variables, read for the logits; after the update the keys overwrite the oldest rows.
  compiled: {
    problem: () => undefined,
    stateful: {},
    inputs: ({ views }, options) => {
      if (views.length < 2) throw new Error(`a two-view step needs 2 views, got ${views.length}`);
      const batch = views[0].shape[0];
      if (batch > options.queueSize) {
        throw invalidOption(optionKey('queueSize'), `at least the batch size (${batch})`, options.queueSize);
      }
      return { images: tf.clone(views[0]) as tf.Tensor4D, targetImages: tf.clone(views[1]) as tf.Tensor4D };
    },
    graph: (g, features, _targets, head, options, state) => {
      const { queue, pointer } = state?.buffers ?? {};
      if (!state?.targetFeatures || !state.targetHead || !queue || !pointer) {
        throw new Error('moco needs its key encoder and queue in the graph');
      }
      const q = head('projection', features); // [B, P]
      const k = state.targetHead('projection', state.targetFeatures); // [B, P]
      const { loss, accuracy } = infoNceGraph(g, q, k, queue, options.temperature);
      const next = enqueueGraph(g, k, pointer, options.queueSize);
      return {
        loss,
        metrics: { accuracy },
        bufferUpdates: { queue: { rows: next.rows, values: next.values }, pointer: next.pointer },
      };
    },
  },
});

/** The defaults of every option, the shared augmentation ones included. */
export const MOCO_DEFAULTS: Readonly<MocoOptions> = mocoTask.defaults;
