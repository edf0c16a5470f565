/**
 * ResNet-18/34/50 (He et al., "Deep Residual Learning for Image Recognition",
 * 2015) in the torchvision variant: the stride of a bottleneck block sits on its
 * 3x3 convolution ("ResNet v1.5"), and shortcuts that change shape are a 1x1
 * convolution + BatchNorm (`downsample.0`, `downsample.1`).
 *
 * Functional ops over tf.Variables (no tfjs-layers in training). Variables carry
 * torchvision's state_dict names; conv kernels are stored HWIO
 * ([kh, kw, in, out], TensorFlow's layout), converted to OIHW on export.
 */
import * as tf from '@tensorflow/tfjs';
import { createRng, type Rng } from '../util/rng.js';
import { type BatchNormParameters, batchNorm, conv2d, maxPoolAfterRelu, relu } from './ops.js';
import type { Backbone, BackboneConfig, NamedVariable, ResNetArch } from './types.js';

/** Block type and blocks per stage of each architecture. */
export const RESNET_SPECS: Record<
  ResNetArch,
  { block: 'basic' | 'bottleneck'; layers: [number, number, number, number] }
> = {
  resnet18: { block: 'basic', layers: [2, 2, 2, 2] },
  resnet34: { block: 'basic', layers: [3, 4, 6, 3] },
  resnet50: { block: 'bottleneck', layers: [3, 4, 6, 3] },
};

/** How variables start: Kaiming-normal convs (fan_out, like torchvision) or all zeros (weights come next). */
export type InitMode = 'kaiming' | 'none';

let instanceCounter = 0;

/** A bias-free convolution followed by a BatchNorm, by torchvision module names. */
export interface ConvNormLayout {
  /** Module name of the convolution (`conv1`, `layer1.0.conv2`, `layer2.0.downsample.0`); its kernel is `<conv>.weight`. */
  conv: string;
  /** Module name of the BatchNorm after it (`bn1`, `layer1.0.bn2`, `layer2.0.downsample.1`). */
  norm: string;
  kernelSize: number;
  inputChannels: number;
  outputChannels: number;
  stride: number;
  /** Zeros on each side (symmetric, as PyTorch pads). */
  padding: number;
}

/** One residual block: convs (ReLU between them), an optional projection shortcut, then add and ReLU. */
export interface BlockLayout {
  name: string;
  convs: ConvNormLayout[];
  downsample?: ConvNormLayout;
}

/**
 * The whole network as data: the one description of the architecture that the
 * trainable backbone, the tfjs LayersModel export and the ONNX export are built from.
 */
export interface ResNetLayout {
  stem: ConvNormLayout;
  /** ImageNet stem only: MaxPool2d(size, stride, padding) after the stem's ReLU. */
  maxPool: { size: number; stride: number; padding: number } | null;
  blocks: BlockLayout[];
  /** Channels of the last block = length of the pooled feature vector. */
  featureDim: number;
}

/** Base width of the stem and the first stage for a width multiplier. */
export function baseWidth(widthMultiplier: number): number {
  return Math.max(1, Math.round(64 * widthMultiplier));
}

/** The layers of a ResNet config, in torchvision's order and names. */
export function resnetLayout(config: BackboneConfig): ResNetLayout {
  const spec = RESNET_SPECS[config.arch];
  const expansion = spec.block === 'bottleneck' ? 4 : 1;
  const base = baseWidth(config.widthMultiplier);
  const convNorm = (
    conv: string,
    norm: string,
    kernelSize: number,
    inputChannels: number,
    outputChannels: number,
    stride: number,
    padding: number,
  ): ConvNormLayout => ({ conv, norm, kernelSize, inputChannels, outputChannels, stride, padding });

  const imagenet = config.stem === 'imagenet';
  const stem = convNorm(
    'conv1',
    'bn1',
    imagenet ? 7 : 3,
    config.inputChannels,
    base,
    imagenet ? 2 : 1,
    imagenet ? 3 : 1,
  );
  const blocks: BlockLayout[] = [];
  let inputWidth = base;
  spec.layers.forEach((count, stage) => {
    const planes = base * 2 ** stage;
    for (let index = 0; index < count; index++) {
      const name = `layer${stage + 1}.${index}`;
      const stride = index === 0 && stage > 0 ? 2 : 1;
      const output = planes * expansion;
      const convs =
        spec.block === 'basic'
          ? [
              convNorm(`${name}.conv1`, `${name}.bn1`, 3, inputWidth, planes, stride, 1),
              convNorm(`${name}.conv2`, `${name}.bn2`, 3, planes, planes, 1, 1),
            ]
          : [
              convNorm(`${name}.conv1`, `${name}.bn1`, 1, inputWidth, planes, 1, 0),
              convNorm(`${name}.conv2`, `${name}.bn2`, 3, planes, planes, stride, 1),
              convNorm(`${name}.conv3`, `${name}.bn3`, 1, planes, output, 1, 0),
            ];
      const downsample =
        stride !== 1 || inputWidth !== output
          ? convNorm(`${name}.downsample.0`, `${name}.downsample.1`, 1, inputWidth, output, stride, 0)
          : undefined;
      blocks.push({ name, convs, ...(downsample ? { downsample } : {}) });
      inputWidth = output;
    }
  });
  return { stem, maxPool: imagenet ? { size: 3, stride: 2, padding: 1 } : null, blocks, featureDim: inputWidth };
}

interface ConvLayer {
  kernel: tf.Variable; // [kh, kw, in, out]
  stride: number;
  padding: number;
}

interface BlockLayers {
  convs: ConvLayer[];
  norms: BatchNormParameters[];
  downsample?: { conv: ConvLayer; norm: BatchNormParameters };
}

export class ResNet implements Backbone {
  readonly featureDim: number;
  /** The architecture as data (see {@link resnetLayout}). */
  readonly layout: ResNetLayout;
  /** torchvision's `num_batches_tracked` (the same for every BatchNorm): training forward passes so far. */
  numBatchesTracked = 0;
  private readonly named: NamedVariable[] = [];
  private readonly prefix: string;
  private readonly stem: { conv: ConvLayer; norm: BatchNormParameters };
  private readonly blocks: BlockLayers[] = [];
  private disposed = false;

  constructor(
    readonly config: BackboneConfig,
    init: InitMode = 'kaiming',
    rng: Rng = createRng(0),
  ) {
    this.prefix = `${config.arch}_${++instanceCounter}`;
    const layout = resnetLayout(config);
    this.layout = layout;
    const initRng = rng.derive('init');
    const makeConv = (l: ConvNormLayout): ConvLayer => ({
      kernel: this.convVariable(
        l.conv,
        l.kernelSize,
        l.inputChannels,
        l.outputChannels,
        init === 'kaiming' ? initRng.derive(l.conv) : undefined,
      ),
      stride: l.stride,
      padding: l.padding,
    });
    const makeNorm = (l: ConvNormLayout) => this.batchNormVariables(l.norm, l.outputChannels);

    this.stem = { conv: makeConv(layout.stem), norm: makeNorm(layout.stem) };
    for (const blockLayout of layout.blocks) {
      const block: BlockLayers = { convs: [], norms: [] };
      for (const l of blockLayout.convs) {
        block.convs.push(makeConv(l));
        block.norms.push(makeNorm(l));
      }
      if (blockLayout.downsample) {
        block.downsample = { conv: makeConv(blockLayout.downsample), norm: makeNorm(blockLayout.downsample) };
      }
      this.blocks.push(block);
    }
    this.featureDim = layout.featureDim;
  }

  private register(name: string, value: tf.Tensor, trainable: boolean, kind: NamedVariable['kind']): tf.Variable {
    const variable = tf.variable(value, trainable, `${this.prefix}/${name}`);
    value.dispose();
    this.named.push({ name, variable, trainable, kind });
    return variable;
  }

  private convVariable(name: string, size: number, input: number, output: number, rng: Rng | undefined) {
    const count = size * size * input * output;
    const values = new Float32Array(count);
    if (rng) {
      // kaiming_normal_(mode='fan_out', nonlinearity='relu'): std = sqrt(2 / (out * kh * kw)).
      const std = Math.sqrt(2 / (output * size * size));
      for (let i = 0; i < count; i++) values[i] = rng.normal() * std;
    }
    return this.register(`${name}.weight`, tf.tensor4d(values, [size, size, input, output]), true, 'conv');
  }

  private batchNormVariables(name: string, channels: number): BatchNormParameters {
    return {
      gamma: this.register(`${name}.weight`, tf.ones([channels]), true, 'bn-gamma'),
      beta: this.register(`${name}.bias`, tf.zeros([channels]), true, 'bn-beta'),
      runningMean: this.register(`${name}.running_mean`, tf.zeros([channels]), false, 'bn-mean'),
      runningVar: this.register(`${name}.running_var`, tf.ones([channels]), false, 'bn-var'),
    };
  }

  variables(): NamedVariable[] {
    return [...this.named];
  }

  /** Feature map before pooling: [B, H/32, W/32, D] (ImageNet stem) or [B, H/8, W/8, D] (small stem). */
  featureMap(x: tf.Tensor4D, training: boolean): tf.Tensor4D {
    if (this.disposed) throw new Error('this backbone was disposed');
    if (x.rank !== 4 || x.shape[3] !== this.config.inputChannels) {
      throw new Error(
        `Expected input [B, H, W, ${this.config.inputChannels}] for ${this.config.arch} but received [${x.shape.join(', ')}]`,
      );
    }
    if (training) this.numBatchesTracked++;
    const apply = (h: tf.Tensor4D, conv: ConvLayer, norm: BatchNormParameters) =>
      batchNorm(conv2d(h, conv.kernel as tf.Tensor4D, conv.stride, conv.padding), norm, training);
    let h = relu(apply(x, this.stem.conv, this.stem.norm));
    const pool = this.layout.maxPool;
    if (pool) h = maxPoolAfterRelu(h, pool.size, pool.stride, pool.padding);
    for (const block of this.blocks) {
      let out = h;
      const last = block.convs.length - 1;
      block.convs.forEach((conv, i) => {
        out = apply(out, conv, block.norms[i]);
        if (i < last) out = relu(out);
      });
      const shortcut = block.downsample ? apply(h, block.downsample.conv, block.downsample.norm) : h;
      h = relu(tf.add(out, shortcut));
    }
    return h;
  }

  features(x: tf.Tensor4D, training: boolean): tf.Tensor2D {
    return tf.mean(this.featureMap(x, training), [1, 2]) as tf.Tensor2D; // [B, D]
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const { variable } of this.named) variable.dispose();
  }
}
