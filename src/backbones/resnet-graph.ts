/**
 * The ResNet of {@link resnetLayout} and the linear/BatchNorm/ReLU heads of heads.ts as
 * TensorFlow graph operations (src/engine/graph-runtime.ts), computing what
 * resnet.ts and ops.ts compute eagerly: symmetric zero padding, BatchNorm2d with
 * torchvision's epsilon and momentum (FusedBatchNormV3 updates the running
 * statistics from the unbiased batch variance), ReLU, global average pooling.
 * Weights are read through `weights` by their torchvision names.
 */
import { DT_FLOAT, DT_INT32, type GraphBuilder } from '../engine/graph-runtime.js';
import { BN_EPSILON, BN_MOMENTUM } from './ops.js';
import type { ConvNormLayout, ResNetLayout } from './resnet.js';
import type { HeadBlock } from './types.js';

/** How graph code reaches the variables: the value read of a weight and the handle of a running statistic. */
export interface GraphWeights {
  /** Output holding the current value of the variable named `name` (`conv1.weight`, `bn1.running_mean`). */
  read(name: string): string;
  /** Resource handle of the variable named `name` (for assigning running statistics). */
  handle(name: string): string;
}

/** Graph outputs of a training or evaluation forward pass. */
export interface GraphForward {
  /** [B, D] pooled features (or [B, K] head outputs). */
  output: string;
  /** AssignVariableOp operations that update BatchNorm running statistics (training only): run them with the step. */
  updates: string[];
}

const FLOAT = { type: DT_FLOAT };

function padded(g: GraphBuilder, x: string, padding: number): string {
  const paddings = g.constInt([0, 0, padding, padding, padding, padding, 0, 0], [4, 2], 'paddings');
  return g.op('Pad', [x, paddings], { T: FLOAT, Tpaddings: { type: DT_INT32 } });
}

/** PyTorch-style Conv2d without bias on NHWC input with an HWIO kernel, as ops.ts's conv2d. */
function conv(g: GraphBuilder, x: string, kernel: string, l: ConvNormLayout): string {
  const strides = { ints: [1, l.stride, l.stride, 1] };
  const attrs = (padding: string) => ({
    T: FLOAT,
    strides,
    padding: { string: padding },
    data_format: { string: 'NHWC' },
  });
  if (l.padding === 0) return g.op('Conv2D', [x, kernel], attrs('VALID'));
  if (l.stride === 1 && l.kernelSize % 2 === 1 && l.padding === (l.kernelSize - 1) / 2) {
    return g.op('Conv2D', [x, kernel], attrs('SAME'));
  }
  return g.op('Conv2D', [padded(g, x, l.padding), kernel], attrs('VALID'));
}

function batchNorm(g: GraphBuilder, x: string, norm: string, w: GraphWeights, training: boolean, updates: string[]) {
  const inputs = [
    x,
    w.read(`${norm}.weight`),
    w.read(`${norm}.bias`),
    w.read(`${norm}.running_mean`),
    w.read(`${norm}.running_var`),
  ];
  const y = g.op('FusedBatchNormV3', inputs, {
    T: FLOAT,
    U: FLOAT,
    epsilon: { float: BN_EPSILON },
    data_format: { string: 'NHWC' },
    is_training: { bool: training },
    ...(training ? { exponential_avg_factor: { float: BN_MOMENTUM } } : {}),
  });
  if (training) {
    for (const [stat, index] of [
      ['running_mean', 1],
      ['running_var', 2],
    ] as const) {
      const assign = g.op('AssignVariableOp', [w.handle(`${norm}.${stat}`), g.output(y, index)], { dtype: FLOAT });
      updates.push(assign.slice(0, assign.lastIndexOf(':')));
    }
  }
  return y;
}

/** Pooled features [B, D] of `input` [B, H, W, C] through the ResNet of `layout`. */
export function resnetGraph(
  g: GraphBuilder,
  layout: ResNetLayout,
  input: string,
  weights: GraphWeights,
  training: boolean,
): GraphForward {
  const updates: string[] = [];
  const convNorm = (x: string, l: ConvNormLayout) =>
    batchNorm(g, conv(g, x, weights.read(`${l.conv}.weight`), l), l.norm, weights, training, updates);
  const relu = (x: string) => g.op('Relu', [x], { T: FLOAT });
  let h = relu(convNorm(input, layout.stem));
  if (layout.maxPool) {
    const { size, stride, padding } = layout.maxPool;
    // Zero padding equals PyTorch's -inf padding after a ReLU (see ops.ts maxPoolAfterRelu).
    h = g.op('MaxPool', [padded(g, h, padding)], {
      T: FLOAT,
      ksize: { ints: [1, size, size, 1] },
      strides: { ints: [1, stride, stride, 1] },
      padding: { string: 'VALID' },
      data_format: { string: 'NHWC' },
    });
  }
  for (const block of layout.blocks) {
    let out = h;
    block.convs.forEach((l, i) => {
      out = convNorm(out, l);
      if (i < block.convs.length - 1) out = relu(out);
    });
    const shortcut = block.downsample ? convNorm(h, block.downsample) : h;
    h = relu(g.op('AddV2', [out, shortcut], { T: FLOAT }));
  }
  const axes = g.constInt([1, 2], [2], 'pool_axes');
  const output = g.op('Mean', [h, axes], { T: FLOAT, Tidx: { type: DT_INT32 }, keep_dims: { bool: false } });
  return { output, updates };
}

/** Why a head cannot be built as a graph yet, or undefined when it can (linear, BatchNorm and ReLU blocks). */
export function headGraphProblem(blocks: HeadBlock[]): string | undefined {
  for (const block of blocks) {
    if ('linear' in block && block.normalizedWeight) return 'weight-normalised linear blocks are not compiled yet';
    if ('l2normalize' in block) return 'l2normalize head blocks are not compiled yet';
  }
  return undefined;
}

/**
 * A head of `blocks` (named `prefix.<index>.weight/bias` as heads.ts names them) on x [B, D].
 * BatchNorm1d blocks (heads.ts: the same epsilon and momentum as the backbone's) run as
 * FusedBatchNormV3 on [B, 1, 1, D]; with `training` they normalise with batch statistics
 * and push their running-statistics assignments to `updates`.
 */
export function headGraph(
  g: GraphBuilder,
  blocks: HeadBlock[],
  prefix: string,
  x: string,
  weights: GraphWeights,
  training = false,
  updates: string[] = [],
) {
  const problem = headGraphProblem(blocks);
  if (problem) throw new Error(`head ${prefix}: ${problem}`);
  let y = x;
  blocks.forEach((block, index) => {
    if ('batchNorm' in block) {
      const dim = (axis: number) => g.constInt([axis], [], 'axis');
      const expand = (t: string) => g.op('ExpandDims', [t, dim(1)], { T: FLOAT, Tdim: { type: DT_INT32 } });
      const normalised = batchNorm(g, expand(expand(y)), `${prefix}.${index}`, weights, training, updates); // [B, 1, 1, D]
      y = g.op('Squeeze', [normalised], { T: FLOAT, squeeze_dims: { ints: [1, 2] } });
      return;
    }
    if ('linear' in block) {
      y = g.op('MatMul', [y, weights.read(`${prefix}.${index}.weight`)], {
        T: FLOAT,
        transpose_a: { bool: false },
        transpose_b: { bool: false },
      });
      if (block.bias !== false) {
        y = g.op('BiasAdd', [y, weights.read(`${prefix}.${index}.bias`)], { T: FLOAT });
      }
    } else if ('relu' in block) {
      y = g.op('Relu', [y], { T: FLOAT });
    }
  });
  return y;
}
