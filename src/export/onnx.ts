/**
 * A backbone (and optionally a classifier head) as an ONNX inference graph.
 *
 * Choices, each deliberate:
 * - **Opset 13, IR version 7.** Every operator used here (Conv, Relu, MaxPool,
 *   Add, GlobalAveragePool, Flatten, Gemm, Softmax, Sub, Div, Cast) already has its
 *   current semantics at opset 13 (later versions only add data types), and opset
 *   13 loads in every maintained runtime: onnxruntime since 1.6, TensorRT 8,
 *   OpenVINO, onnxruntime-web and mobile. Softmax at 13 normalises one axis (older
 *   opsets flattened to 2-D first).
 * - **Input `image`: float32 [batch, C, H, W] (NCHW) pixels in [0, 1]**, RGB (or
 *   one gray channel). The batch axis is symbolic (`batch`), so one file serves any
 *   batch size. H and W are fixed to the size the weights were trained at when it
 *   is known (the manifest's `inputSize`, a classifier's input size), which lets
 *   runtimes plan memory and is the scale the features are meaningful at; they are
 *   symbolic (`height`, `width`) when it is not known (the network itself accepts any size).
 * - **Normalisation is in the model**: the first two nodes subtract the mean and
 *   divide by the std (per channel). It cannot be folded into the first
 *   convolution because PyTorch pads the normalised image with zeros. mean/std
 *   are also in the metadata, with the layout, so nothing has to be guessed.
 * - **BatchNorm is folded into the convolution before it** (eval mode:
 *   W' = W * gamma / sqrt(var + eps), b' = beta - mean * gamma / sqrt(var + eps),
 *   computed in float64 and rounded once). A head's BatchNorm1d is folded into
 *   the Linear before it the same way. The graph holds no BatchNormalization node.
 * - **Padding is explicit and symmetric** (Conv `pads`, MaxPool `pads` with
 *   ONNX's -inf padding), as in torchvision and in src/backbones.
 * - **float16 weights** are stored as float16 initializers followed by a Cast to
 *   float32: the file is half the size, inputs and arithmetic stay float32, so
 *   the model runs on every runtime's float32 kernels (onnxruntime's CPU provider
 *   has few float16 kernels).
 */
import { BN_EPSILON } from '../backbones/ops.js';
import { type ConvNormLayout, resnetLayout } from '../backbones/resnet.js';
import type { Backbone, HeadBlock, NamedVariable } from '../backbones/types.js';
import { UsageError } from '../util/errors.js';
import { VERSION } from '../version.js';
import { encodeOnnxModel, ONNX_FLOAT, OnnxGraphBuilder, type OnnxValueInfo } from './onnx-proto.js';

export const ONNX_OPSET = 13;
export const ONNX_IR_VERSION = 7;
export const ONNX_MODEL_FILE = 'model.onnx';
export const ONNX_INPUT_NAME = 'image';

/** What a head must offer to be exported: its block specs and named variables (a BlockHead from createHead). */
export interface OnnxHead {
  readonly name: string;
  readonly blocks: readonly HeadBlock[];
  variables(): NamedVariable[];
}

export interface OnnxGraphOptions {
  /** Per-channel mean/std on [0, 1] pixels, applied inside the model. */
  mean: number[];
  std: number[];
  /** Square input side; null or undefined leaves H and W symbolic. */
  inputSize?: number | null;
  /** `float32` (default) or `float16` weights (cast to float32 when the model loads). */
  weights?: 'float32' | 'float16';
  /** A classifier head on the pooled features; the model then outputs `logits` [batch, K] instead of `features`. */
  head?: OnnxHead;
  /** With a head: also output `probabilities` = softmax(logits). */
  softmax?: boolean;
  /** More ModelProto metadata_props (string values). */
  metadata?: Record<string, string>;
  /** A line saying what this model is (ModelProto.doc_string). */
  description?: string;
}

/** Outputs of an exported model, in order. */
export function onnxOutputNames(options: Pick<OnnxGraphOptions, 'head' | 'softmax'>): string[] {
  if (!options.head) return ['features'];
  return options.softmax ? ['logits', 'probabilities'] : ['logits'];
}

/** Values of named variables as float32 arrays; a missing name is an error naming it. */
function variableReader(variables: NamedVariable[], owner: string): (name: string) => Float32Array {
  const byName = new Map(variables.map((v) => [v.name, v.variable]));
  return (name) => {
    const variable = byName.get(name);
    if (!variable) throw new Error(`${owner} has no variable "${name}"`);
    return variable.dataSync() as Float32Array;
  };
}

/** gamma / sqrt(var + eps) per channel, in float64. */
function batchNormScale(gamma: Float32Array, variance: Float32Array): Float64Array {
  const scale = new Float64Array(gamma.length);
  for (let c = 0; c < gamma.length; c++) scale[c] = gamma[c] / Math.sqrt(variance[c] + BN_EPSILON);
  return scale;
}

/** Conv kernel HWIO [k, k, in, out] times the BN scale per output, as ONNX's OIHW [out, in, k, k]. */
function foldConvKernel(kernel: Float32Array, l: ConvNormLayout, scale: Float64Array): Float32Array {
  const { kernelSize: k, inputChannels: cin, outputChannels: cout } = l;
  const out = new Float32Array(kernel.length);
  for (let o = 0; o < cout; o++) {
    for (let i = 0; i < cin; i++) {
      for (let h = 0; h < k; h++) {
        for (let w = 0; w < k; w++) {
          out[((o * cin + i) * k + h) * k + w] = kernel[((h * k + w) * cin + i) * cout + o] * scale[o];
        }
      }
    }
  }
  return out;
}

function checkNormalisation(mean: number[], std: number[], channels: number): void {
  if (mean.length !== channels || std.length !== channels) {
    throw new UsageError(`mean/std need ${channels} value(s) each, got ${mean.length}/${std.length}`);
  }
  if (std.some((s) => !(s > 0))) throw new UsageError(`std values must be positive, got [${std.join(', ')}]`);
}

/** One head operation after folding: a Linear (BatchNorm folded in) or a ReLU. */
type HeadOperation =
  | { op: 'gemm'; name: string; weight: Float32Array; bias: Float32Array; inputDim: number; outputDim: number }
  | { op: 'relu'; name: string };

/** A head's blocks as Gemm/Relu operations, each BatchNorm1d folded into the Linear before it. */
function headOperations(head: OnnxHead): HeadOperation[] {
  const read = variableReader(head.variables(), `head "${head.name}"`);
  const ops: HeadOperation[] = [];
  head.blocks.forEach((block, index) => {
    const prefix = `head.${head.name}.${index}`;
    if ('linear' in block) {
      const kernel = read(`${prefix}.weight`); // [in, out]
      const outputDim = block.linear;
      const inputDim = kernel.length / outputDim;
      const weight = new Float32Array(kernel.length); // [out, in] (Gemm with transB = 1)
      for (let i = 0; i < inputDim; i++) {
        for (let o = 0; o < outputDim; o++) weight[o * inputDim + i] = kernel[i * outputDim + o];
      }
      const bias = block.bias === false ? new Float32Array(outputDim) : read(`${prefix}.bias`).slice();
      ops.push({ op: 'gemm', name: prefix, weight, bias, inputDim, outputDim });
    } else if ('batchNorm' in block) {
      const previous = ops[ops.length - 1];
      if (previous?.op !== 'gemm') {
        throw new UsageError(
          `${prefix}: ONNX export folds a BatchNorm into the linear block before it; this one has none`,
        );
      }
      const scale = batchNormScale(read(`${prefix}.weight`), read(`${prefix}.running_var`));
      const beta = read(`${prefix}.bias`);
      const mean = read(`${prefix}.running_mean`);
      for (let o = 0; o < previous.outputDim; o++) {
        for (let i = 0; i < previous.inputDim; i++) previous.weight[o * previous.inputDim + i] *= scale[o];
        previous.bias[o] = (previous.bias[o] - mean[o]) * scale[o] + beta[o];
      }
    } else if ('relu' in block) {
      ops.push({ op: 'relu', name: `${prefix}.relu` });
    } else {
      throw new UsageError(`${prefix}: ONNX export supports linear, batchNorm and relu head blocks, not l2normalize`);
    }
  });
  return ops;
}

/**
 * The ONNX model (bytes) of a ResNet backbone in eval mode: `image` [batch, C, H, W]
 * -> `features` [batch, D], or with a head -> `logits` [batch, K] (and
 * `probabilities` with `softmax`). See the module comment for the choices.
 */
export function backboneToOnnx(backbone: Backbone, options: OnnxGraphOptions): Uint8Array {
  const config = backbone.config;
  const layout = resnetLayout(config);
  if (layout.featureDim !== backbone.featureDim) {
    throw new Error(
      `the backbone's feature size ${backbone.featureDim} does not match its layout (${layout.featureDim})`,
    );
  }
  const channels = config.inputChannels;
  checkNormalisation(options.mean, options.std, channels);
  const read = variableReader(backbone.variables(), `${config.arch} backbone`);
  const g = new OnnxGraphBuilder(options.weights ?? 'float32');

  const mean = g.constant('normalize.mean', Float32Array.from(options.mean), [1, channels, 1, 1]);
  const std = g.constant('normalize.std', Float32Array.from(options.std), [1, channels, 1, 1]);
  let x = g.node('Sub', 'normalize.sub', [ONNX_INPUT_NAME, mean]);
  x = g.node('Div', 'normalize', [x, std]);

  const convNorm = (input: string, l: ConvNormLayout): string => {
    const scale = batchNormScale(read(`${l.norm}.weight`), read(`${l.norm}.running_var`));
    const beta = read(`${l.norm}.bias`);
    const runningMean = read(`${l.norm}.running_mean`);
    const bias = new Float32Array(l.outputChannels);
    for (let o = 0; o < l.outputChannels; o++) bias[o] = beta[o] - runningMean[o] * scale[o];
    const k = l.kernelSize;
    const weight = g.weight(`${l.conv}.weight`, foldConvKernel(read(`${l.conv}.weight`), l, scale), [
      l.outputChannels,
      l.inputChannels,
      k,
      k,
    ]);
    const p = l.padding;
    return g.node('Conv', l.conv, [input, weight, g.weight(`${l.conv}.bias`, bias, [l.outputChannels])], {
      kernel_shape: [k, k],
      strides: [l.stride, l.stride],
      pads: [p, p, p, p],
      dilations: [1, 1],
      group: 1,
    });
  };

  x = g.node('Relu', 'relu', [convNorm(x, layout.stem)]);
  if (layout.maxPool) {
    const { size, stride, padding: p } = layout.maxPool;
    x = g.node('MaxPool', 'maxpool', [x], {
      kernel_shape: [size, size],
      strides: [stride, stride],
      pads: [p, p, p, p],
    });
  }
  for (const block of layout.blocks) {
    let out = x;
    block.convs.forEach((l, i) => {
      out = convNorm(out, l);
      if (i < block.convs.length - 1) out = g.node('Relu', `${block.name}.relu${i + 1}`, [out]);
    });
    const shortcut = block.downsample ? convNorm(x, block.downsample) : x;
    x = g.node('Relu', `${block.name}.relu`, [g.node('Add', `${block.name}.add`, [out, shortcut])]);
  }
  x = g.node('GlobalAveragePool', 'avgpool', [x]);
  x = g.node('Flatten', 'flatten', [x], { axis: 1 }, 'features');

  const outputs: OnnxValueInfo[] = [];
  if (options.head) {
    const ops = headOperations(options.head);
    const last = ops.length - 1;
    if (last < 0 || ops[last].op !== 'gemm')
      throw new UsageError('ONNX export needs a head that ends in a linear block');
    let dim = backbone.featureDim;
    ops.forEach((op, i) => {
      const output = i === last ? 'logits' : op.name;
      if (op.op === 'relu') {
        x = g.node('Relu', op.name, [x], {}, output);
        return;
      }
      if (op.inputDim !== dim) throw new UsageError(`${op.name}: takes ${op.inputDim} inputs but receives ${dim}`);
      dim = op.outputDim;
      const weight = g.weight(`${op.name}.weight`, op.weight, [op.outputDim, op.inputDim]);
      const bias = g.weight(`${op.name}.bias`, op.bias, [op.outputDim]);
      x = g.node('Gemm', op.name, [x, weight, bias], { transB: 1 }, output);
    });
    const classes = dim;
    outputs.push({
      name: 'logits',
      elemType: ONNX_FLOAT,
      dims: ['batch', classes],
      docString: 'class scores before softmax',
    });
    if (options.softmax) {
      g.node('Softmax', 'softmax', ['logits'], { axis: 1 }, 'probabilities');
      outputs.push({
        name: 'probabilities',
        elemType: ONNX_FLOAT,
        dims: ['batch', classes],
        docString: 'softmax of the logits',
      });
    }
  } else {
    outputs.push({
      name: 'features',
      elemType: ONNX_FLOAT,
      dims: ['batch', backbone.featureDim],
      docString: 'globally average-pooled backbone features',
    });
  }

  const size = options.inputSize ?? null;
  const input: OnnxValueInfo = {
    name: ONNX_INPUT_NAME,
    elemType: ONNX_FLOAT,
    dims: ['batch', channels, size ?? 'height', size ?? 'width'],
    docString: `float32 pixels in [0, 1], NCHW, ${channels === 3 ? 'RGB' : 'one gray channel'}; the model normalises them`,
  };
  const metadata: Record<string, string> = {
    input_layout: 'NCHW',
    input_range: '[0, 1]',
    channel_order: channels === 3 ? 'RGB' : 'L',
    normalization: 'in-model: (image - mean) / std',
    mean: JSON.stringify(options.mean),
    std: JSON.stringify(options.std),
    input_size: size === null ? '' : String(size),
    outputs: onnxOutputNames(options).join(','),
    architecture: config.arch,
    stem: config.stem,
    width_multiplier: String(config.widthMultiplier),
    weights: options.weights ?? 'float32',
    ...options.metadata,
  };
  return encodeOnnxModel({
    graph: g.graph(`selfsup_${config.arch}`, [input], outputs, options.description ?? ''),
    irVersion: ONNX_IR_VERSION,
    opset: ONNX_OPSET,
    producerName: 'selfsup',
    producerVersion: VERSION,
    docString: options.description,
    metadata,
  });
}
