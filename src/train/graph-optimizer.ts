/**
 * The optimizer update of the compiled step as graph operations: global-norm
 * clipping (torch.nn.utils.clip_grad_norm_) over the parameters the loss reaches,
 * then per parameter the update optimizers.ts runs eagerly.
 *
 * - SGD (optimizers.ts's Sgd, torch.optim.SGD): g += wd * p (not for BatchNorm
 *   parameters and biases); buf = momentum * buf + g; p -= lr * (nesterov ?
 *   g + momentum * buf : buf) — TensorFlow's ResourceApplyMomentum computes
 *   exactly this (ResourceApplyGradientDescent without momentum).
 * - LARS (graph-lars.ts) feeds ResourceApplyMomentum the trust-ratio-scaled
 *   gradient at learning rate 1.
 * - Adam (g += wd * p) and AdamW (p *= 1 - lr * wd first), as torch.optim's:
 *   ResourceApplyAdam with each parameter's beta powers fed per step (its own
 *   update count t) and epsilon fed as eps * sqrt(1 - beta2^t), which makes its
 *   `m / (sqrt(v) + epsilon)` torch's `m / (sqrt(v) / sqrt(1 - beta2^t) + eps)`.
 *
 * Every update waits for the global norm, i.e. for every gradient, so no weight
 * changes under a read of it.
 */
import { DT_FLOAT, DT_INT32, type GraphBuilder, type GraphVariableOps, opName } from '../engine/graph-runtime.js';
import type { OptimizerConfig } from '../recipes/optimizer-schema.js';
import type { MirroredVariable } from './compiled-step.js';
import { larsScaledGradient } from './graph-lars.js';
import { isDecayExempt } from './optimizers.js';

const FLOAT = { type: DT_FLOAT };

/** Placeholders an Adam update of one parameter is fed per step: beta1^t, beta2^t and the scaled epsilon. */
export interface AdamPowerFeeds {
  beta1: string;
  beta2: string;
  epsilon: string;
}

export interface OptimizerGraphSpec {
  optimizer: OptimizerConfig;
  /** Clip the global gradient norm to this (0: no clipping). */
  gradClipNorm: number;
  /** The learning-rate placeholder (scalar). */
  learningRate: string;
  variable(name: string): GraphVariableOps;
  /** The momentum buffer of a parameter (sgd with momentum, lars). */
  momentum(name: string): GraphVariableOps | undefined;
  /** Adam's moments of a parameter (adam, adamw). */
  moments(name: string): { m: GraphVariableOps; v: GraphVariableOps } | undefined;
}

export interface OptimizerGraph {
  /** The global gradient norm before clipping (scalar). */
  norm: string;
  /** Parameter name -> the operation that updates it. */
  updates: Map<string, string>;
  /** Parameter name -> its Adam feeds (adam, adamw; empty otherwise). */
  betaPowers: Map<string, AdamPowerFeeds>;
}

/** The clipping and update operations for the `reached` parameters and their gradients. */
export function optimizerGraph(
  g: GraphBuilder,
  reached: ReadonlyArray<{ variable: MirroredVariable; grad: string }>,
  spec: OptimizerGraphSpec,
): OptimizerGraph {
  const squares = reached.map(({ variable, grad }) => {
    const rank = variable.variable.shape.length;
    const axes = g.constInt([...Array(rank).keys()], [rank], 'norm_axes');
    return g.op('Sum', [g.op('Square', [grad], { T: FLOAT }), axes], {
      T: FLOAT,
      Tidx: { type: DT_INT32 },
      keep_dims: { bool: false },
    });
  });
  const norm = g.op('Sqrt', [g.op('AddN', [squares], { N: { int: squares.length }, T: FLOAT })], { T: FLOAT });
  let scale: string | undefined;
  if (spec.gradClipNorm > 0) {
    const limit = g.op(
      'RealDiv',
      [g.constFloat([spec.gradClipNorm], []), g.op('AddV2', [norm, g.constFloat([1e-6], [])], { T: FLOAT })],
      { T: FLOAT },
    );
    scale = g.op('Minimum', [g.constFloat([1], []), limit], { T: FLOAT });
  }
  const { name: optimizerName, momentum, nesterov, weightDecay, betas } = spec.optimizer;
  const adam = optimizerName === 'adam' || optimizerName === 'adamw';
  const momentumValue = g.constFloat([momentum], [], 'momentum');
  const updates = new Map<string, string>();
  const betaPowers = new Map<string, AdamPowerFeeds>();
  for (const { variable: v, grad } of reached) {
    const ops = spec.variable(v.name);
    let g2 = scale ? g.op('Mul', [grad, scale], { T: FLOAT }) : grad;
    const decayed = weightDecay > 0 && !isDecayExempt(v.kind);
    if (decayed && optimizerName !== 'adamw') {
      g2 = g.op('AddV2', [g2, g.op('Mul', [ops.read, g.constFloat([weightDecay], [])], { T: FLOAT })], {
        T: FLOAT,
      });
    }
    const lr =
      (v.lrScale ?? 1) === 1
        ? spec.learningRate
        : g.op('Mul', [spec.learningRate, g.constFloat([v.lrScale ?? 1], [])], { T: FLOAT });
    const control = [opName(norm)];
    const slot = spec.momentum(v.name);
    const moments = spec.moments(v.name);
    let update: string;
    if (adam) {
      if (!moments) throw new Error(`the compiled step has no Adam moments for ${v.name}`);
      if (decayed && optimizerName === 'adamw') {
        // Decoupled decay first (p *= 1 - lr * wd), then the Adam update reads the decayed weight.
        const factor = g.op(
          'Sub',
          [g.constFloat([1], []), g.op('Mul', [lr, g.constFloat([weightDecay], [])], { T: FLOAT })],
          { T: FLOAT },
        );
        const decay = g.op(
          'AssignVariableOp',
          [ops.handle, g.op('Mul', [ops.snapshot, factor], { T: FLOAT })],
          { dtype: FLOAT },
          { name: `decay/${v.name}`, control },
        );
        control.push(opName(decay));
      }
      const feeds: AdamPowerFeeds = {
        beta1: g.placeholder(`beta1_power/${v.name}`, DT_FLOAT, []),
        beta2: g.placeholder(`beta2_power/${v.name}`, DT_FLOAT, []),
        epsilon: g.placeholder(`epsilon/${v.name}`, DT_FLOAT, []),
      };
      betaPowers.set(v.name, feeds);
      update = g.op(
        'ResourceApplyAdam',
        [
          ops.handle,
          moments.m.handle,
          moments.v.handle,
          feeds.beta1,
          feeds.beta2,
          lr,
          g.constFloat([betas[0]], []),
          g.constFloat([betas[1]], []),
          feeds.epsilon,
          g2,
        ],
        { T: FLOAT, use_locking: { bool: false }, use_nesterov: { bool: false } },
        { name: `update/${v.name}`, control },
      );
    } else if (slot && (momentum > 0 || optimizerName === 'lars')) {
      // LARS: its trust-ratio-scaled gradient at rate 1 (graph-lars.ts).
      const lars = optimizerName === 'lars';
      const input = lars
        ? larsScaledGradient(g, ops.read, g2, lr, {
            adapted: !isDecayExempt(v.kind),
            trustCoefficient: spec.optimizer.trustCoefficient,
            rank: v.variable.shape.length,
          })
        : g2;
      update = g.op(
        'ResourceApplyMomentum',
        [ops.handle, slot.handle, lars ? g.constFloat([1], []) : lr, input, momentumValue],
        { T: FLOAT, use_locking: { bool: false }, use_nesterov: { bool: nesterov } },
        { name: `update/${v.name}`, control },
      );
    } else if (optimizerName === 'lars') {
      throw new Error(`the compiled step has no LARS momentum buffer for ${v.name}`);
    } else {
      update = g.op(
        'ResourceApplyGradientDescent',
        [ops.handle, lr, g2],
        { T: FLOAT, use_locking: { bool: false } },
        { name: `update/${v.name}`, control },
      );
    }
    updates.set(v.name, opName(update));
  }
  return { norm, updates, betaPowers };
}
