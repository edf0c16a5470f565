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
import { createHead } from '../src/backbones/heads.js';
import type { Head } from '../src/backbones/types.js';
import { invalidOption } from '../src/util/errors.js';
import {
  type SimclrAugmentationOptions,
  simclrView,
  TWO_VIEW_AUGMENTATION_DEFAULTS,
  TWO_VIEW_AUGMENTATION_DOCS,
} from './augmentations.js';
import { accuracyFromLogits, crossEntropyFromLogits, enqueue, infoNceLogits, stopGradient } from './losses.js';
import { checkInteger, checkNumber, checkTwoViewAugmentation, mergeOptions, optionKey } from './options.js';
import type { PretextTask } from './types.js';

export interface MocoOptions extends SimclrAugmentationOptions {
  /** Temperature of InfoNCE (MoCo v2: 0.2). */
  temperature: number;
  /** Output size of the MLP head (MoCo: 128). */
  projectionDim: number;
  /** Hidden width of the MLP head; 'featureDim' uses the backbone's feature size (MoCo v2). */
  hiddenDim: number | 'featureDim';
  /** Negatives kept in the queue, K (MoCo: 65536; must be a multiple of the batch size for whole-batch slots). */
  queueSize: number;
  /** Key-encoder momentum at the first step (MoCo: 0.999, constant). */
  momentum: number;
  /** Key-encoder momentum at the last step (MoCo: equal to momentum; 1 gives BYOL's cosine rise). */
  momentumEnd: number;
}

export interface MocoHeads {
  projection: Head;
}

export const MOCO_DEFAULTS: Readonly<MocoOptions> = Object.freeze({
  temperature: 0.2,
  projectionDim: 128,
  hiddenDim: 'featureDim' as const,
  queueSize: 65536,
  momentum: 0.999,
  momentumEnd: 0.999,
  ...TWO_VIEW_AUGMENTATION_DEFAULTS,
});

export const mocoTask: PretextTask<MocoOptions, MocoHeads> = {
  id: 'moco',
  paper:
    'He, Fan, Wu, Xie & Girshick, "Momentum Contrast for Unsupervised Visual Representation Learning" (MoCo), CVPR 2020, with the v2 changes of Chen, Fan, Girshick & He, "Improved Baselines with Momentum Contrastive Learning", 2020: ' +
    '"We maintain the dictionary as a queue of data samples: the encoded representations of the current mini-batch are enqueued, and the oldest are dequeued."',
  defaults: MOCO_DEFAULTS,
  optionDocs: {
    temperature: 'Temperature of InfoNCE, a number > 0 and <= 10 (default 0.2).',
    projectionDim: 'Output size of the MLP head, integer >= 1 (default 128).',
    hiddenDim: 'Hidden width of the MLP head: an integer >= 1 or "featureDim" (default: the backbone feature size).',
    queueSize: 'Negatives in the queue, integer >= 1 and at least the batch size (default 65536; 4096 for small data).',
    momentum: 'Key-encoder momentum at the first step, in [0, 1] (default 0.999).',
    momentumEnd: 'Key-encoder momentum at the last step, in [momentum, 1] (default 0.999: constant, as MoCo).',
    ...TWO_VIEW_AUGMENTATION_DOCS,
  },
  validate(options) {
    const merged = mergeOptions(MOCO_DEFAULTS, options);
    const hidden = merged.hiddenDim;
    if (hidden !== 'featureDim' && !(typeof hidden === 'number' && Number.isInteger(hidden) && hidden >= 1)) {
      throw invalidOption(optionKey('hiddenDim'), 'an integer >= 1 or "featureDim"', hidden);
    }
    const momentum = checkNumber('momentum', merged.momentum, 0, 1);
    return {
      temperature: checkNumber('temperature', merged.temperature, 0, 10, true),
      projectionDim: checkInteger('projectionDim', merged.projectionDim, 1, 65536),
      hiddenDim: hidden as number | 'featureDim',
      queueSize: checkInteger('queueSize', merged.queueSize, 1, 1 << 20),
      momentum,
      momentumEnd: checkNumber('momentumEnd', merged.momentumEnd, momentum, 1),
      ...checkTwoViewAugmentation(merged),
    };
  },
  views(options, input) {
    return [simclrView(input, options), simclrView(input, options)];
  },
  createHeads(options, featureDim, rng) {
    const hidden = options.hiddenDim === 'featureDim' ? featureDim : options.hiddenDim;
    const blocks = [{ linear: hidden }, { relu: true as const }, { linear: options.projectionDim }];
    return { projection: createHead(blocks, featureDim, rng.derive('head', 'projection'), 'projection') };
  },
  headModules(heads) {
    return { projection: heads.projection };
  },
  state(options) {
    return {
      target: { heads: ['projection'], momentumStart: options.momentum, momentumEnd: options.momentumEnd },
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
};
