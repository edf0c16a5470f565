/**
 * The ResNet of {@link resnetLayout} and the linear/BatchNorm/ReLU heads of heads.ts as
 * TensorFlow graph operations (src/engine/graph-runtime.ts), computing what
 * resnet.ts and ops.ts compute eagerly: symmetric zero padding, BatchNorm2d with
 * torchvision's epsilon and momentum (FusedBatchNormV3 updates the running
 * statistics from the unbiased batch variance), ReLU, global average pooling.
 * Weights are read through `weights` by their torchvision names.
 */
import { DT_FLOAT, DT_INT32, type GraphBuilder, type GraphVariableOps, opName } from '../engine/graph-runtime.js';
import { BN_EPSILON, BN_MOMENTUM } from './ops.js';
import type { ConvNormLayout, ResNetLayout } from './resnet.js';
import type { HeadBlock } from './types.js';

/** How graph code reaches the variables: the value of a weight, and where a training pass puts new running statistics. */
export interface GraphWeights {
  /** Output holding the current value of the variable named `name` (`conv1.weight`, `bn1.running_mean`). */
  read(name: string): string;
  /**
   * Training passes only: `value` is the new value of the running statistic `name` after
   * this BatchNorm layer (FusedBatchNormV3's exponential average); {@link TrainingGraphWeights}
   * returns it from later reads and assigns the last one to the variable.
   */
  updateStatistic?(name: string, value: string): void;
}

/**
 * The variables of a training graph as {@link GraphWeights}. A BatchNorm layer's
 * running statistics chain from one forward pass to the next: a second pass
 * through the layer (the second view of a two-view method) starts from the
 * first pass's update, as two consecutive eager calls do, and `assignments()`
 * writes each statistic's last value to its variable.
 */
export class TrainingGraphWeights {
  /** Latest value of each updated running statistic, by full variable name. */
  private readonly latest = new Map<string, string>();

  constructor(
    private readonly g: GraphBuilder,
    private readonly variable: (name: string) => GraphVariableOps,
  ) {}

  /** The weights whose names start with `prefix` (`backbone.`, `heads.projection.`). */
  scoped(prefix: string): GraphWeights {
    return {
      read: (name) => this.latest.get(prefix + name) ?? this.variable(prefix + name).read,
      updateStatistic: (name, value) => {
        this.latest.set(prefix + name, value);
      },
    };
  }

  /** One AssignVariableOp per updated running statistic, of its last value (operation names: run them with the step). */
  assignments(): string[] {
    return [...this.latest].map(([name, value]) =>
      opName(this.g.op('AssignVariableOp', [this.variable(name).handle, value], { dtype: FLOAT })),
    );
  }
}

/** Graph outputs of a training or evaluation forward pass. */
export interface GraphForward {
  /** [B, D] pooled features (or [B, K] head outputs). */
  output: string;
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

function batchNorm(g: GraphBuilder, x: string, norm: string, w: GraphWeights, training: boolean) {
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
    if (!w.updateStatistic)
      throw new Error(`a training pass through ${norm} needs weights that take running statistics`);
    w.updateStatistic(`${norm}.running_mean`, g.output(y, 1));
    w.updateStatistic(`${norm}.running_var`, g.output(y, 2));
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
  const convNorm = (x: string, l: ConvNormLayout) =>
    batchNorm(g, conv(g, x, weights.read(`${l.conv}.weight`), l), l.norm, weights, training);
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
  return { output };
}

/**
 * Why a head cannot be built as a graph, or undefined when it can: every block of heads.ts
 * (linear, weight-normalised linear, BatchNorm, ReLU, L2 normalisation) has its graph form.
 */
export function headGraphProblem(blocks: HeadBlock[]): string | undefined {
  for (const block of blocks) {
    if (!('linear' in block || 'batchNorm' in block || 'relu' in block || 'l2normalize' in block)) {
      return `the head block ${JSON.stringify(block)} has no graph form`;
    }
  }
  return undefined;
}

/** x / max(||x||_2, 1e-12) along `axis` (kept), as heads.ts's l2normalize (axis 1) and normalised kernel (axis 0). */
function l2Normalized(g: GraphBuilder, x: string, axis: number): string {
  const squares = g.op('Sum', [g.op('Square', [x], { T: FLOAT }), g.constInt([axis], [1], 'norm_axis')], {
    T: FLOAT,
    Tidx: { type: DT_INT32 },
    keep_dims: { bool: true },
  });
  const norm = g.op('Maximum', [g.op('Sqrt', [squares], { T: FLOAT }), g.constFloat([1e-12], [], 'norm_floor')], {
    T: FLOAT,
  });
  return g.op('RealDiv', [x, norm], { T: FLOAT });
}

/**
 * A head of `blocks` (named `prefix.<index>.weight/bias` as heads.ts names them) on x [B, D].
 * BatchNorm1d blocks (heads.ts: the same epsilon and momentum as the backbone's) run as
 * FusedBatchNormV3 on [B, 1, 1, D]; with `training` they normalise with batch statistics
 * and hand their new running statistics to `weights.updateStatistic`.
 */
export function headGraph(
  g: GraphBuilder,
  blocks: HeadBlock[],
  prefix: string,
  x: string,
  weights: GraphWeights,
  training = false,
) {
  const problem = headGraphProblem(blocks);
  if (problem) throw new Error(`head ${prefix}: ${problem}`);
  let y = x;
  blocks.forEach((block, index) => {
    if ('batchNorm' in block) {
      const dim = (axis: number) => g.constInt([axis], [], 'axis');
      const expand = (t: string) => g.op('ExpandDims', [t, dim(1)], { T: FLOAT, Tdim: { type: DT_INT32 } });
      const normalised = batchNorm(g, expand(expand(y)), `${prefix}.${index}`, weights, training); // [B, 1, 1, D]
      y = g.op('Squeeze', [normalised], { T: FLOAT, squeeze_dims: { ints: [1, 2] } });
      return;
    }
    if ('linear' in block) {
      const kernel = weights.read(`${prefix}.${index}.weight`); // [in, out]
      // Weight-normalised (DINO's last layer): every output column of the kernel at norm 1.
      y = g.op('MatMul', [y, block.normalizedWeight ? l2Normalized(g, kernel, 0) : kernel], {
        T: FLOAT,
        transpose_a: { bool: false },
        transpose_b: { bool: false },
      });
      if (block.bias !== false) {
        y = g.op('BiasAdd', [y, weights.read(`${prefix}.${index}.bias`)], { T: FLOAT });
      }
    } else if ('relu' in block) {
      y = g.op('Relu', [y], { T: FLOAT });
    } else if ('l2normalize' in block) {
      y = l2Normalized(g, y, 1);
    }
  });
  return y;
}
