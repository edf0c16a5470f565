/**
 * Rotation prediction — Gidaris, Singh and Komodakis, "Unsupervised
 * Representation Learning by Predicting Image Rotations", ICLR 2018.
 *
 * The sentence implemented: "we propose to learn image features by training
 * ConvNets to recognize the 2d rotation that is applied to the image that it
 * gets as input", with the rotations restricted to multiples of 90 degrees
 * (0, 90, 180, 270), a 4-way classification.
 *
 * The loader produces one mildly augmented view per image; rotations are done
 * here on tensors (transpose + reverse), either all four per image (the paper's
 * choice: the batch grows to 4B) or one random rotation per image drawn from the
 * step's seeded rng.
 */
import * as tf from '@tensorflow/tfjs';
import { createNamedHead, mlpBlocks } from '../src/backbones/heads.js';
import type { Head } from '../src/backbones/types.js';
import { UsageError } from '../src/util/errors.js';
import { mildView } from './augmentations.js';
import { accuracyGraph, crossEntropyGraph } from './graph-losses.js';
import { accuracyFromLogits, crossEntropyFromLogits } from './losses.js';
import { checkBoolean, checkInteger, checkOneOf, checkRange, validatorFor } from './options.js';
import type { PretextTask } from './types.js';

export interface RotationOptions {
  /** 'all-four': every image in all four rotations (batch 4B); 'random-one': one random rotation per image. */
  mode: 'all-four' | 'random-one';
  /** 'linear': one linear layer on the pooled features; 'mlp': linear-BN-ReLU-linear. */
  head: 'linear' | 'mlp';
  /** Hidden width of the MLP head (ignored for 'linear'). */
  hiddenDim: number;
  /** Scale range of the random resized crop of the view. */
  cropScale: [number, number];
  /** Random horizontal flip (p 0.5) before rotating. */
  horizontalFlip: boolean;
}

export interface RotationHeads {
  classifier: Head;
}

/** The number of rotation classes: 0, 90, 180, 270 degrees. */
export const ROTATION_CLASSES = 4;

/**
 * Rotates images [B, H, W, C] (H = W) by k * 90 degrees counterclockwise, as
 * `torch.rot90(x, k, dims=(H, W))` and `np.rot90`: k = 1 moves the top-right
 * pixel to the top-left.
 */
export function rotate90(images: tf.Tensor4D, k: number): tf.Tensor4D {
  const turns = ((k % 4) + 4) % 4;
  if (images.shape[1] !== images.shape[2]) {
    throw new UsageError(`rotate90 needs square images, got ${images.shape[1]}x${images.shape[2]}`);
  }
  return tf.tidy(() => {
    switch (turns) {
      case 0:
        return tf.clone(images);
      case 1: // out[i][j] = in[j][W-1-i]
        return tf.reverse(tf.transpose(images, [0, 2, 1, 3]), 1);
      case 2: // out[i][j] = in[H-1-i][W-1-j]
        return tf.reverse(images, [1, 2]);
      default: // out[i][j] = in[H-1-j][i]
        return tf.transpose(tf.reverse(images, 1), [0, 2, 1, 3]);
    }
  });
}

/**
 * The rotated batch and its labels. 'all-four': [rot0(x); rot90(x); rot180(x);
 * rot270(x)] ([4B, H, W, C]) with labels [0..0, 1..1, 2..2, 3..3]; otherwise
 * image b rotated by `turns[b]` ([B, H, W, C]).
 */
export function rotateBatch(
  images: tf.Tensor4D,
  turns: Int32Array | 'all-four',
): { inputs: tf.Tensor4D; labels: tf.Tensor1D } {
  return tf.tidy(() => {
    const batch = images.shape[0];
    const all = tf.concat([0, 1, 2, 3].map((k) => rotate90(images, k))); // [4B, H, W, C]
    if (turns === 'all-four') {
      const labels = new Int32Array(4 * batch);
      for (let i = 0; i < 4 * batch; i++) labels[i] = Math.floor(i / batch);
      return { inputs: all, labels: tf.tensor1d(labels, 'int32') };
    }
    if (turns.length !== batch) throw new UsageError(`rotateBatch needs ${batch} turns, got ${turns.length}`);
    const rows = new Int32Array(batch);
    for (let b = 0; b < batch; b++) rows[b] = turns[b] * batch + b;
    return { inputs: tf.gather(all, tf.tensor1d(rows, 'int32')), labels: tf.tensor1d(turns, 'int32') };
  });
}

/** Defaults of the rotation task. */
export const ROTATION_DEFAULTS: Readonly<RotationOptions> = Object.freeze({
  mode: 'all-four',
  head: 'linear',
  hiddenDim: 256,
  cropScale: [0.6, 1] as [number, number],
  horizontalFlip: true,
});

export const rotationTask: PretextTask<RotationOptions, RotationHeads> = {
  id: 'rotation',
  paper:
    'Gidaris, Singh & Komodakis, "Unsupervised Representation Learning by Predicting Image Rotations", ICLR 2018: ' +
    '"we propose to learn image features by training ConvNets to recognize the 2d rotation that is applied to the image that it gets as input" (0, 90, 180, 270 degrees).',
  defaults: ROTATION_DEFAULTS,
  optionDocs: {
    mode: '"all-four" (default; every image in all four rotations, batch becomes 4B, as in the paper) or "random-one" (one random rotation per image).',
    head: '"linear" (default) or "mlp" (linear-BatchNorm-ReLU-linear) on the pooled features.',
    hiddenDim: 'Hidden width of the MLP head, integer >= 1 (default 256; unused by the linear head).',
    cropScale: 'Area range [low, high] within [0.05, 1] of the random resized crop of the view (default [0.6, 1]).',
    horizontalFlip: 'Random horizontal flip with p 0.5 before rotating (default true).',
  },
  validate: validatorFor(ROTATION_DEFAULTS, (merged) => ({
    mode: checkOneOf('mode', merged.mode, ['all-four', 'random-one'] as const),
    head: checkOneOf('head', merged.head, ['linear', 'mlp'] as const),
    hiddenDim: checkInteger('hiddenDim', merged.hiddenDim, 1, 65536),
    cropScale: checkRange('cropScale', merged.cropScale, 0.05, 1),
    horizontalFlip: checkBoolean('horizontalFlip', merged.horizontalFlip),
  })),
  views(options, input) {
    return [mildView(input, options.cropScale, options.horizontalFlip)];
  },
  createHeads(options, featureDim, rng) {
    const blocks =
      options.head === 'mlp' ? mlpBlocks([options.hiddenDim], ROTATION_CLASSES) : [{ linear: ROTATION_CLASSES }];
    return { classifier: createNamedHead('classifier', blocks, featureDim, rng) };
  },
  headModules(heads) {
    return { classifier: heads.classifier };
  },
  step(ctx, options) {
    const { inputs, labels } = rotatedInputs(ctx.views[0] as tf.Tensor4D, ctx.rng, options); // [N, H, W, C], [N]
    const features = ctx.backbone.features(inputs, ctx.training); // [N, D]
    const logits = ctx.heads.classifier.apply(features, ctx.training); // [N, 4]
    return {
      loss: crossEntropyFromLogits(logits, labels),
      metrics: { accuracy: accuracyFromLogits(logits, labels) },
      embeddings: features,
    };
  },
  compiled: {
    problem: (options) => (options.head === 'linear' ? undefined : 'only the linear head is compiled'),
    targetShape: () => [ROTATION_CLASSES],
    inputs(ctx, options) {
      const { inputs, labels } = rotatedInputs(ctx.views[0] as tf.Tensor4D, ctx.rng, options);
      return { images: inputs, targets: tf.oneHot(labels, ROTATION_CLASSES).toFloat() }; // [N, H, W, C], [N, 4]
    },
    graph(g, features, targets, head) {
      if (!targets) throw new Error('the compiled rotation step needs its one-hot targets');
      const logits = head('classifier', features); // [N, 4]
      return {
        loss: crossEntropyGraph(g, logits, targets),
        metrics: { accuracy: accuracyGraph(g, logits, targets) },
      };
    },
  },
};

/** The rotated batch of the step: the same rng draws for the eager and the compiled step. */
function rotatedInputs(images: tf.Tensor4D, rng: { int(n: number): number }, options: RotationOptions) {
  let turns: Int32Array | 'all-four' = 'all-four';
  if (options.mode === 'random-one') {
    turns = new Int32Array(images.shape[0]);
    for (let b = 0; b < turns.length; b++) turns[b] = rng.int(ROTATION_CLASSES);
  }
  return rotateBatch(images, turns);
}
