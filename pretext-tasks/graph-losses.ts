/**
 * Losses and metrics of losses.ts as TensorFlow graph operations, for tasks'
 * compiled steps (src/train/compiled-step.ts). Outputs are graph output names.
 */
import { DT_BOOL, DT_FLOAT, DT_INT32, type GraphBuilder } from '../src/engine/graph-runtime.js';

const FLOAT = { type: DT_FLOAT };

/**
 * Mean softmax cross-entropy of one-hot targets under logits, as
 * crossEntropyFromLogits: logits [N, K], targets [N, K] -> scalar.
 */
export function crossEntropyGraph(g: GraphBuilder, logits: string, targets: string): string {
  const perExample = g.op('SoftmaxCrossEntropyWithLogits', [logits, targets], { T: FLOAT }); // [N]
  return g.op('Mean', [perExample, g.constInt([0], [1], 'axes')], {
    T: FLOAT,
    Tidx: { type: DT_INT32 },
    keep_dims: { bool: false },
  });
}

/** Fraction of rows whose argmax is the target's argmax: logits, one-hot targets [N, K] -> scalar. */
export function accuracyGraph(g: GraphBuilder, logits: string, targets: string): string {
  const axis = g.constInt([1], [], 'argmax_axis');
  const argMax = (x: string) =>
    g.op('ArgMax', [x, axis], { T: FLOAT, Tidx: { type: DT_INT32 }, output_type: { type: DT_INT32 } });
  const equal = g.op('Equal', [argMax(logits), argMax(targets)], { T: { type: DT_INT32 } });
  const asFloat = g.op('Cast', [equal], { SrcT: { type: DT_BOOL }, DstT: FLOAT });
  return g.op('Mean', [asFloat, g.constInt([0], [1], 'axes')], {
    T: FLOAT,
    Tidx: { type: DT_INT32 },
    keep_dims: { bool: false },
  });
}
