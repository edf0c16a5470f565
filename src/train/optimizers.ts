/**
 * Optimizers written over variables, with PyTorch's update rules: SGD
 * (momentum, Nesterov), AdamW (decoupled weight decay) and LARS (You et al.,
 * 2017, as used by SimCLR). Weight decay, and LARS's trust ratio, are not applied
 * to BatchNorm parameters and biases (`NamedVariable.kind`).
 *
 * State (momentum buffers, Adam moments) lives in variables owned by the
 * optimizer: `dispose()` frees them, `stateVariables()` exposes them for
 * checkpoints, and the step count is host state (`hostState()`).
 */
import * as tf from '@tensorflow/tfjs';
import type { NamedVariable } from '../backbones/types.js';
import type { OptimizerConfig, OptimizerName } from '../recipes/pretrain-schema.js';

/** A trainable variable the optimizer updates. */
export interface TrainableParam {
  /** Unique name (e.g. `backbone.layer1.0.conv1.weight`); gradients are keyed by it. */
  name: string;
  variable: tf.Variable;
  kind: NamedVariable['kind'];
}

/** BatchNorm parameters and biases get no weight decay and no LARS adaptation. */
export function isDecayExempt(kind: NamedVariable['kind']): boolean {
  return kind === 'bias' || kind === 'bn-gamma' || kind === 'bn-beta';
}

export interface VariableOptimizer {
  readonly name: OptimizerName;
  /**
   * Applies one update with learning rate `lr` from gradients keyed by parameter
   * name (parameters without a gradient are left alone). Call inside tf.tidy.
   */
  apply(grads: Record<string, tf.Tensor>, lr: number): void;
  /** Slot variables, named `optimizer.<slot>.<param>`, for checkpoints. */
  stateVariables(): Array<{ name: string; variable: tf.Variable }>;
  /** Host-side state (the update count) for checkpoints. */
  hostState(): { steps: number };
  restoreHostState(state: { steps: number }): void;
  /** Frees every slot variable. */
  dispose(): void;
}

type Slots = Map<string, tf.Variable>;

function zerosSlot(param: TrainableParam): tf.Variable {
  const zeros = tf.zerosLike(param.variable);
  const slot = tf.variable(zeros, false);
  zeros.dispose();
  return slot;
}

abstract class SlotOptimizer implements VariableOptimizer {
  abstract readonly name: OptimizerName;
  protected steps = 0;
  protected readonly slots = new Map<string, Slots>();

  constructor(
    protected readonly config: OptimizerConfig,
    protected readonly params: TrainableParam[],
    slotNames: string[],
  ) {
    const seen = new Set<string>();
    for (const p of params) {
      if (seen.has(p.name)) throw new Error(`optimizer: parameter name "${p.name}" appears twice`);
      seen.add(p.name);
    }
    for (const slot of slotNames) {
      this.slots.set(slot, new Map(params.map((p) => [p.name, zerosSlot(p)])));
    }
  }

  protected slot(slotName: string, param: string): tf.Variable {
    return this.slots.get(slotName)!.get(param)!;
  }

  apply(grads: Record<string, tf.Tensor>, lr: number): void {
    this.steps++;
    for (const p of this.params) {
      const g = grads[p.name];
      if (g) this.update(p, g, lr);
    }
  }

  protected abstract update(param: TrainableParam, grad: tf.Tensor, lr: number): void;

  stateVariables(): Array<{ name: string; variable: tf.Variable }> {
    const out: Array<{ name: string; variable: tf.Variable }> = [];
    for (const [slotName, slots] of this.slots) {
      for (const [param, variable] of slots) out.push({ name: `optimizer.${slotName}.${param}`, variable });
    }
    return out;
  }

  hostState(): { steps: number } {
    return { steps: this.steps };
  }

  restoreHostState(state: { steps: number }): void {
    this.steps = state.steps;
  }

  dispose(): void {
    for (const slots of this.slots.values()) for (const v of slots.values()) v.dispose();
    this.slots.clear();
  }
}

/**
 * SGD as in torch.optim.SGD (dampening 0): g += wd * p; buf = momentum * buf + g;
 * step = nesterov ? g + momentum * buf : buf; p -= lr * step.
 */
class Sgd extends SlotOptimizer {
  readonly name = 'sgd' as const;
  constructor(config: OptimizerConfig, params: TrainableParam[]) {
    super(config, params, config.momentum > 0 ? ['momentum'] : []);
  }
  protected update(p: TrainableParam, grad: tf.Tensor, lr: number): void {
    const { momentum, nesterov, weightDecay } = this.config;
    let g = grad;
    if (weightDecay > 0 && !isDecayExempt(p.kind)) g = g.add(p.variable.mul(weightDecay));
    let step = g;
    if (momentum > 0) {
      const buf = this.slot('momentum', p.name);
      const next = buf.mul(momentum).add(g);
      buf.assign(next);
      step = nesterov ? g.add(next.mul(momentum)) : next;
    }
    p.variable.assign(p.variable.sub(step.mul(lr)));
  }
}

/**
 * AdamW as in torch.optim.AdamW: p *= 1 - lr * wd; m = b1 m + (1 - b1) g;
 * v = b2 v + (1 - b2) g^2; p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
 */
class AdamW extends SlotOptimizer {
  readonly name = 'adamw' as const;
  constructor(config: OptimizerConfig, params: TrainableParam[]) {
    super(config, params, ['m', 'v']);
  }
  protected update(p: TrainableParam, grad: tf.Tensor, lr: number): void {
    const { betas, eps, weightDecay } = this.config;
    const [beta1, beta2] = betas;
    const t = this.steps;
    let value: tf.Tensor = p.variable;
    if (weightDecay > 0 && !isDecayExempt(p.kind)) value = value.mul(1 - lr * weightDecay);
    const m = this.slot('m', p.name);
    const v = this.slot('v', p.name);
    const nextM = m.mul(beta1).add(grad.mul(1 - beta1));
    const nextV = v.mul(beta2).add(grad.square().mul(1 - beta2));
    m.assign(nextM);
    v.assign(nextV);
    const biasCorrection1 = 1 - beta1 ** t;
    const biasCorrection2 = 1 - beta2 ** t;
    const denominator = nextV.sqrt().div(Math.sqrt(biasCorrection2)).add(eps);
    p.variable.assign(value.sub(nextM.div(denominator).mul(lr / biasCorrection1)));
  }
}

/**
 * LARS as in SimCLR's implementation: for adapted parameters g = grad + wd * p and
 * the local rate is lr * eta * ||p|| / ||g|| (1 when either norm is 0); BatchNorm
 * parameters and biases use plain lr and no decay. v = momentum * v + rate * g;
 * p -= nesterov ? momentum * v + rate * g : v.
 */
class Lars extends SlotOptimizer {
  readonly name = 'lars' as const;
  constructor(config: OptimizerConfig, params: TrainableParam[]) {
    super(config, params, ['momentum']);
  }
  protected update(p: TrainableParam, grad: tf.Tensor, lr: number): void {
    const { momentum, nesterov, weightDecay, trustCoefficient } = this.config;
    let g = grad;
    let rate: tf.Tensor = tf.scalar(lr);
    if (!isDecayExempt(p.kind)) {
      if (weightDecay > 0) g = g.add(p.variable.mul(weightDecay));
      const paramNorm = tf.norm(p.variable);
      const gradNorm = tf.norm(g);
      const ratio = tf.where(
        tf.logicalAnd(paramNorm.greater(0), gradNorm.greater(0)),
        paramNorm.mul(trustCoefficient).div(gradNorm),
        tf.onesLike(paramNorm),
      );
      rate = ratio.mul(lr);
    }
    const scaled = g.mul(rate);
    const buf = this.slot('momentum', p.name);
    const next = buf.mul(momentum).add(scaled);
    buf.assign(next);
    const step = nesterov ? next.mul(momentum).add(scaled) : next;
    p.variable.assign(p.variable.sub(step));
  }
}

/** Builds the optimizer named in `config` over `params`. */
export function createOptimizer(config: OptimizerConfig, params: TrainableParam[]): VariableOptimizer {
  switch (config.name) {
    case 'sgd':
      return new Sgd(config, params);
    case 'adamw':
      return new AdamW(config, params);
    case 'lars':
      return new Lars(config, params);
  }
}

/**
 * Global L2 norm of `grads` and, when `maxNorm` > 0 and the norm exceeds it, the
 * gradients scaled by maxNorm / norm (torch.nn.utils.clip_grad_norm_). Call inside tf.tidy.
 */
export function clipByGlobalNorm(
  grads: Record<string, tf.Tensor>,
  maxNorm: number,
): { grads: Record<string, tf.Tensor>; norm: tf.Scalar } {
  const squares = Object.values(grads).map((g) => g.square().sum());
  const norm = (squares.length ? tf.addN(squares).sqrt() : tf.scalar(0)) as tf.Scalar;
  if (!(maxNorm > 0)) return { grads, norm };
  const scale = tf.minimum(tf.scalar(1), tf.scalar(maxNorm).div(norm.add(1e-6)));
  const clipped: Record<string, tf.Tensor> = {};
  for (const [name, g] of Object.entries(grads)) clipped[name] = g.mul(scale);
  return { grads: clipped, norm };
}
