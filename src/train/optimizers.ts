/**
 * Optimizers written over variables, with PyTorch's update rules: SGD
 * (momentum, Nesterov), Adam (L2 weight decay added to the gradient), AdamW
 * (decoupled weight decay) and LARS (You et al., 2017, as used by SimCLR).
 * Weight decay, and LARS's trust ratio, are not applied to BatchNorm parameters
 * and biases (`NamedVariable.kind`).
 *
 * Parameter groups: each parameter may carry a learning-rate multiplier
 * (`lrScale`, e.g. 0.1 for a pretrained backbone under a new head).
 *
 * State is keyed by parameter name, so one optimizer serves a run whose trained
 * subset changes (finetuning stages): a parameter without a gradient in a step is
 * left alone, its state included. State (momentum buffers, Adam moments) lives in
 * variables owned by the optimizer: `dispose()` frees them, `stateVariables()`
 * exposes them for checkpoints; the update counts (one per parameter, as PyTorch
 * keeps `state['step']`, so a parameter that starts training late gets Adam's
 * bias correction from its own first update) are host state (`hostState()`).
 */
import * as tf from '@tensorflow/tfjs';
import type { NamedVariable } from '../backbones/types.js';
import type { OptimizerConfig, OptimizerName } from '../recipes/optimizer-schema.js';

/** A trainable variable the optimizer updates. */
export interface TrainableParam {
  /** Unique name (e.g. `backbone.layer1.0.conv1.weight`); gradients are keyed by it. */
  name: string;
  variable: tf.Variable;
  kind: NamedVariable['kind'];
  /** Learning-rate multiplier of this parameter's group (default 1). */
  lrScale?: number;
}

/** BatchNorm parameters and biases get no weight decay and no LARS adaptation. */
export function isDecayExempt(kind: NamedVariable['kind']): boolean {
  return kind === 'bias' || kind === 'bn-gamma' || kind === 'bn-beta';
}

export interface VariableOptimizer {
  readonly name: OptimizerName;
  /**
   * Applies one update with learning rate `lr` (times each parameter's `lrScale`)
   * from gradients keyed by parameter name (parameters without a gradient are
   * left alone). Call inside tf.tidy.
   */
  apply(grads: Record<string, tf.Tensor>, lr: number): void;
  /** Slot variables, named `optimizer.<slot>.<param>`, for checkpoints. */
  stateVariables(): Array<{ name: string; variable: tf.Variable }>;
  /** Host-side state (update counts) for checkpoints. */
  hostState(): OptimizerHostState;
  /** Updates parameter `name` has received so far (Adam's `t` is this plus one at its next update). */
  updateCount(name: string): number;
  /**
   * Counts one update that was applied elsewhere (a compiled step in a graph
   * session) to the named parameters, as apply() counts its own.
   */
  countUpdate(names: Iterable<string>): void;
  restoreHostState(state: OptimizerHostState): void;
  /**
   * Starts the named parameters afresh (zero slots, update count 0), e.g. after
   * their parametrisation changed (a standardisation folded into a layer).
   */
  resetState(names: string[]): void;
  /** Frees every slot variable. */
  dispose(): void;
}

/**
 * Update counts: `steps` calls of apply(), and per parameter the updates it
 * received where that differs from `steps` (absent in checkpoints written before
 * per-parameter counts: every parameter then counts `steps`).
 */
export interface OptimizerHostState {
  steps: number;
  paramSteps?: Record<string, number>;
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
  /** Updates each parameter has received (its own `t`). */
  protected readonly paramSteps = new Map<string, number>();
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
      if (!g) continue;
      const t = (this.paramSteps.get(p.name) ?? 0) + 1;
      this.paramSteps.set(p.name, t);
      this.update(p, g, lr * (p.lrScale ?? 1), t);
    }
  }

  /** One parameter's update; `t` is its 1-based update count. */
  protected abstract update(param: TrainableParam, grad: tf.Tensor, lr: number, t: number): void;

  stateVariables(): Array<{ name: string; variable: tf.Variable }> {
    const out: Array<{ name: string; variable: tf.Variable }> = [];
    for (const [slotName, slots] of this.slots) {
      for (const [param, variable] of slots) out.push({ name: `optimizer.${slotName}.${param}`, variable });
    }
    return out;
  }

  hostState(): OptimizerHostState {
    const paramSteps: Record<string, number> = {};
    // Every parameter whose count differs from `steps`, those never updated (0) included.
    for (const p of this.params) {
      const t = this.paramSteps.get(p.name) ?? 0;
      if (t !== this.steps) paramSteps[p.name] = t;
    }
    return Object.keys(paramSteps).length ? { steps: this.steps, paramSteps } : { steps: this.steps };
  }

  updateCount(name: string): number {
    return this.paramSteps.get(name) ?? 0;
  }

  countUpdate(names: Iterable<string>): void {
    this.steps++;
    for (const name of names) this.paramSteps.set(name, (this.paramSteps.get(name) ?? 0) + 1);
  }

  restoreHostState(state: OptimizerHostState): void {
    this.steps = state.steps;
    this.paramSteps.clear();
    for (const p of this.params) this.paramSteps.set(p.name, state.paramSteps?.[p.name] ?? state.steps);
  }

  resetState(names: string[]): void {
    tf.tidy(() => {
      for (const name of names) {
        for (const slots of this.slots.values()) slots.get(name)?.assign(tf.zerosLike(slots.get(name)!));
        this.paramSteps.set(name, 0);
      }
    });
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
 * Adam as in torch.optim.Adam (g += wd * p, L2 decay through the moments) and
 * AdamW as in torch.optim.AdamW (decoupled: p *= 1 - lr * wd); then
 * m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
 * p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
 */
class Adam extends SlotOptimizer {
  readonly name: 'adam' | 'adamw';
  constructor(config: OptimizerConfig, params: TrainableParam[]) {
    super(config, params, ['m', 'v']);
    this.name = config.name === 'adamw' ? 'adamw' : 'adam';
  }
  protected update(p: TrainableParam, grad: tf.Tensor, lr: number, t: number): void {
    const { betas, eps, weightDecay } = this.config;
    const [beta1, beta2] = betas;
    const decayed = weightDecay > 0 && !isDecayExempt(p.kind);
    let value: tf.Tensor = p.variable;
    if (decayed && this.name === 'adamw') value = value.mul(1 - lr * weightDecay);
    const g = decayed && this.name === 'adam' ? grad.add(p.variable.mul(weightDecay)) : grad;
    const m = this.slot('m', p.name);
    const v = this.slot('v', p.name);
    const nextM = m.mul(beta1).add(g.mul(1 - beta1));
    const nextV = v.mul(beta2).add(g.square().mul(1 - beta2));
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
    case 'adam':
    case 'adamw':
      return new Adam(config, params);
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
