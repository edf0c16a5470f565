/**
 * A classifier = a backbone (images -> pooled features [B, D]) + a head
 * (features -> logits [B, K]), with the input preprocessing it was trained with.
 */
import * as tf from '@tensorflow/tfjs';
import { createHead } from '../backbones/heads.js';
import { createForwardPass, DEFAULT_INFERENCE, type InferenceSetting } from '../backbones/inference-graph.js';
import type { Backbone, Head, HeadBlock, NamedVariable } from '../backbones/types.js';
import { evalView } from '../data/augment/presets.js';
import { augmentTensorBatch } from '../data/augment/tensor-batch.js';
import type { InputSpec } from '../data/types.js';
import { invalidOption } from '../util/errors.js';
import type { Rng } from '../util/rng.js';
import { batchPixels, type ImageSet } from './image-set.js';

export interface ClassifierSpec {
  input: InputSpec;
  classNames: string[];
  /** Hidden layer sizes of an MLP head; [] = a linear head. */
  hidden: number[];
}

/** Head blocks for a linear head ([]), or an MLP (linear -> BN -> ReLU per hidden size). */
export function classifierHeadBlocks(hidden: number[], numClasses: number): HeadBlock[] {
  const blocks: HeadBlock[] = [];
  for (const h of hidden) blocks.push({ linear: h }, { batchNorm: true }, { relu: true });
  blocks.push({ linear: numClasses });
  return blocks;
}

export class Classifier {
  readonly head: Head;
  readonly numClasses: number;
  /**
   * How extractFeatures and predictProbabilities run their forward pass: the
   * compiled graph where it can run (src/backbones/inference-graph.ts), else eager.
   */
  inference: InferenceSetting = DEFAULT_INFERENCE;
  /** Called once per batched forward pass with the line saying which path it took and why. */
  onForwardPath?: (reason: string) => void;
  private disposed = false;

  constructor(
    readonly backbone: Backbone,
    readonly spec: ClassifierSpec,
    rng: Rng,
    head?: Head,
  ) {
    if (spec.classNames.length < 2) throw invalidOption('classNames', 'at least 2 classes', spec.classNames);
    if (spec.input.channels !== backbone.config.inputChannels) {
      throw invalidOption(
        'input.channels',
        `${backbone.config.inputChannels} (the backbone's input channels)`,
        spec.input.channels,
      );
    }
    this.numClasses = spec.classNames.length;
    this.head =
      head ?? createHead(classifierHeadBlocks(spec.hidden, this.numClasses), backbone.featureDim, rng, 'classifier');
    if (this.head.outputDim !== this.numClasses) {
      throw invalidOption('head', `${this.numClasses} outputs`, this.head.outputDim);
    }
  }

  /** Backbone then head variables, with torchvision names for the backbone. */
  variables(): NamedVariable[] {
    return [...this.backbone.variables(), ...this.head.variables()];
  }

  /**
   * Logits [B, K] for normalised inputs x [B, H, W, C]. `backboneTraining`
   * selects BatchNorm batch statistics in the backbone; `headTraining` in the head.
   */
  logits(x: tf.Tensor4D, backboneTraining: boolean, headTraining = backboneTraining): tf.Tensor2D {
    return tf.tidy(() => this.head.apply(this.backbone.features(x, backboneTraining), headTraining));
  }

  /** The deterministic evaluation view of `positions` of `set`: [B, H, W, C] normalised. */
  evalInputs(set: ImageSet, positions: ArrayLike<number>, rng: Rng): tf.Tensor4D {
    return tf.tidy(() => augmentTensorBatch(batchPixels(set, positions), evalView(this.spec.input), rng));
  }

  /** Backbone features [N * D] (evaluation mode) for every image of `set`. */
  extractFeatures(set: ImageSet, batchSize = 128, rng?: Rng): Float32Array {
    return this.mapBatches(set, batchSize, this.backbone.featureDim, false, rng);
  }

  /** Softmax probabilities [N * K] (evaluation mode) for every image of `set`. */
  predictProbabilities(set: ImageSet, batchSize = 128, rng?: Rng): Float32Array {
    return this.mapBatches(set, batchSize, this.numClasses, true, rng);
  }

  /** Probabilities [N * K] from precomputed features [N * D] (head only, evaluation mode). */
  probabilitiesFromFeatures(features: Float32Array, batchSize = 1024): Float32Array {
    const d = this.backbone.featureDim;
    const n = features.length / d;
    const out = new Float32Array(n * this.numClasses);
    for (let start = 0; start < n; start += batchSize) {
      const end = Math.min(n, start + batchSize);
      const values = tf.tidy(() => {
        const f = tf.tensor2d(features.subarray(start * d, end * d), [end - start, d]);
        return tf.softmax(this.head.apply(f, false)).dataSync();
      });
      out.set(values, start * this.numClasses);
    }
    return out;
  }

  private mapBatches(set: ImageSet, batchSize: number, width: number, withHead: boolean, rng?: Rng): Float32Array {
    const out = new Float32Array(set.count * width);
    const positions = new Int32Array(batchSize);
    const forward = createForwardPass(this.backbone, withHead ? this.head : undefined, this.inference);
    this.onForwardPath?.(forward.path.reason);
    try {
      for (let start = 0; start < set.count; start += batchSize) {
        const end = Math.min(set.count, start + batchSize);
        for (let i = start; i < end; i++) positions[i - start] = i;
        // The eval pipeline draws no random numbers; the rng only satisfies the signature.
        const x = this.evalInputs(set, positions.subarray(0, end - start), rng ?? NO_RANDOM);
        let pixels: Float32Array;
        try {
          pixels = x.dataSync() as Float32Array;
        } finally {
          x.dispose();
        }
        const outputs = forward.run(pixels, x.shape);
        out.set(withHead ? outputs.probabilities! : outputs.features, start * width);
      }
    } finally {
      forward.dispose();
    }
    return out;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.head.dispose();
    this.backbone.dispose();
  }
}

/** An Rng that fails if used: for pipelines that must be deterministic. */
const NO_RANDOM: Rng = {
  next: fail,
  int: fail,
  uniform: fail,
  chance: fail,
  normal: fail,
  shuffle: fail,
  permutation: fail,
  derive: fail,
  seed: 'none',
  state: fail,
};
function fail(): never {
  throw new Error('the evaluation pipeline must not draw random numbers');
}
