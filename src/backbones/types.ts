/**
 * Contracts of the backbone layer. A backbone maps images [B, H, W, C] to
 * pooled features [B, D]; heads are separate modules.
 */
import type * as tf from '@tensorflow/tfjs';

export type ResNetArch = 'resnet18' | 'resnet34' | 'resnet50';
export type Stem = 'imagenet' | 'small';

export interface BackboneConfig {
  arch: ResNetArch;
  /** 1 for grayscale, 3 for RGB. */
  inputChannels: 1 | 3;
  /** Multiplies every stage's width (64 -> 64 * widthMultiplier). */
  widthMultiplier: number;
  /** imagenet: 7x7/2 conv + 3x3/2 maxpool; small: 3x3/1 conv, no maxpool (28-64 px inputs). */
  stem: Stem;
}

/** A named tensor variable; names follow torchvision (`layer1.0.conv1.weight`, `bn1.running_mean`). */
export interface NamedVariable {
  name: string;
  variable: tf.Variable;
  /** false for BatchNorm running statistics. */
  trainable: boolean;
  /** What an optimizer needs to know: weight decay is not applied to BN parameters and biases. */
  kind: 'conv' | 'dense' | 'bias' | 'bn-gamma' | 'bn-beta' | 'bn-mean' | 'bn-var';
}

/** Something with weights: backbones and heads. */
export interface Module {
  variables(): NamedVariable[];
  dispose(): void;
}

export interface Backbone extends Module {
  readonly config: BackboneConfig;
  /** Length D of the pooled feature vector. */
  readonly featureDim: number;
  /**
   * Pooled features [B, D] of x [B, H, W, C]. With training=true, BatchNorm uses
   * batch statistics and updates its running statistics (momentum 0.1, torch
   * convention); with false it uses the running statistics. Call inside tf.tidy.
   */
  features(x: tf.Tensor4D, training: boolean): tf.Tensor2D;
}

/** A head on pooled features: [B, D] -> [B, K]. */
export interface Head extends Module {
  readonly outputDim: number;
  apply(x: tf.Tensor2D, training: boolean): tf.Tensor2D;
}

/** Block specs a head is built from (lightly-style): applied in order. */
export type HeadBlock =
  /**
   * `normalizedWeight`: the kernel is used with each output column scaled to unit
   * L2 norm (PyTorch `weight_norm` with the gain fixed at 1, DINO's last layer).
   */
  | { linear: number; bias?: boolean; normalizedWeight?: boolean }
  | { batchNorm: true }
  | { relu: true }
  | { l2normalize: true };
