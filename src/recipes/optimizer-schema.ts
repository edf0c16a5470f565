/**
 * The optimisation part shared by every recipe: optimizer, learning-rate
 * schedule and divergence limits. Pretraining and finetuning recipes build
 * their `train` section from these builders, so both speak one dialect
 * (`train.optimizer: {name, lr, ...}`, `train.schedule: {name, ...}`) and differ
 * only in defaults.
 */
import {
  COMPILE_SETTINGS,
  type CompileSetting,
  PRECISION_SETTINGS,
  type PrecisionSetting,
} from '../engine/graph-path.js';
import { type Field, type ObjectField, s } from './schema.js';

export const OPTIMIZER_NAMES = ['sgd', 'adam', 'adamw', 'lars'] as const;
export const SCHEDULE_NAMES = ['cosine', 'step', 'constant'] as const;

export type OptimizerName = (typeof OPTIMIZER_NAMES)[number];
export type ScheduleName = (typeof SCHEDULE_NAMES)[number];

export interface OptimizerConfig {
  name: OptimizerName;
  lr: number;
  momentum: number;
  nesterov: boolean;
  weightDecay: number;
  betas: [number, number];
  eps: number;
  trustCoefficient: number;
}

export interface ScheduleConfig {
  name: ScheduleName;
  warmupEpochs: number;
  minLr: number;
  milestones: number[];
  gamma: number;
}

export interface DivergenceLimits {
  maxLoss: number;
  explodeFactor: number;
}

/** A learning-rate field: greater than 0, at most 10. */
export const lrField = (description: string, extra: object = {}) =>
  s.number(description, { min: 0, max: 10, exclusiveMin: true, ...extra });

/** The `optimizer` mapping, with the defaults of one kind of recipe. */
export function optimizerSchema(
  description: string,
  defaults: Pick<OptimizerConfig, 'name' | 'lr' | 'weightDecay' | 'nesterov'>,
): ObjectField {
  return s.object(description, {
    name: s.oneOf(
      '`sgd` (momentum, optional Nesterov), `adam` (L2 decay through the gradient, as torch.optim.Adam), `adamw` (decoupled decay), `lars` (layer-wise trust ratio).',
      OPTIMIZER_NAMES,
      { default: defaults.name },
    ),
    lr: lrField('Base learning rate (the peak after warmup).', { default: defaults.lr }),
    momentum: s.number('Momentum (sgd, lars).', { min: 0, max: 0.9999, default: 0.9 }),
    nesterov: s.boolean('Nesterov momentum (sgd, lars).', { default: defaults.nesterov }),
    weightDecay: s.number('Weight decay; never applied to BatchNorm parameters and biases.', {
      min: 0,
      max: 1,
      default: defaults.weightDecay,
    }),
    betas: s.array('Adam betas (adam, adamw).', s.number('beta', { min: 0, max: 0.99999 }), {
      minItems: 2,
      maxItems: 2,
      default: [0.9, 0.999],
    }),
    eps: s.number('Adam epsilon (adam, adamw).', { min: 0, max: 1, exclusiveMin: true, default: 1e-8 }),
    trustCoefficient: s.number('LARS trust coefficient (eta).', {
      min: 0,
      max: 1,
      exclusiveMin: true,
      default: 0.001,
    }),
  });
}

/** The `schedule` mapping (per step; see learningRateAt in src/train/schedules.ts). */
export function scheduleSchema(description: string): ObjectField {
  return s.object(description, {
    name: s.oneOf(
      '`cosine`: warmup then cosine to minLr; `step`: x gamma at each milestone epoch; `constant`.',
      SCHEDULE_NAMES,
      { default: 'cosine' },
    ),
    warmupEpochs: s.number('Linear warmup from ~0 to lr over this many epochs (fractions allowed).', {
      min: 0,
      max: 1000,
      default: 0,
    }),
    minLr: s.number('Final learning rate of the cosine schedule.', { min: 0, max: 10, default: 0 }),
    milestones: s.array(
      'Epochs (0-based) at which the step schedule multiplies lr by gamma.',
      s.integer('epoch', { min: 0 }),
      { default: [] },
    ),
    gamma: s.number('Factor of the step schedule.', { min: 0, max: 1, exclusiveMin: true, default: 0.1 }),
  });
}

/** The `divergence` mapping: when a run whose loss diverged stops. */
export function divergenceSchema(): ObjectField {
  return s.object('When to stop a run whose loss has diverged (NaN/Inf always stops it).', {
    maxLoss: s.number('Stop when the loss exceeds this value.', { min: 0, exclusiveMin: true, default: 1e4 }),
    explodeFactor: s.number("Stop when the loss exceeds this factor times the run's first loss.", {
      min: 1,
      default: 50,
    }),
  });
}

/** `train.compile` and `train.precision` (the rule: chooseGraphPath, src/engine/graph-path.ts). */
export { COMPILE_SETTINGS, type CompileSetting, PRECISION_SETTINGS, type PrecisionSetting };

/**
 * `train.compile`: the training step as one compiled graph. `conditions` says
 * what a run of this kind needs for it; the default is `off` for every recipe.
 */
export function compileSchema(conditions: string): Field {
  return s.oneOf(
    `The training step as one compiled TensorFlow graph (forward, loss, gradients and the optimizer update in a session; docs/install.md, "Compiled training step"): \`auto\` where the graph addon is built and the run can be compiled (${conditions}), else the eager step with one line saying why; \`on\` = fail when it cannot; \`off\` = always eager. The run prints which step it uses.`,
    COMPILE_SETTINGS,
    { default: 'off' },
  );
}

/** `train.precision`: float32, bfloat16 (compiled only) or auto. */
export function precisionSchema(): Field {
  return s.oneOf(
    '`float32`, `bfloat16` (the compiled graph runs convolutions and matrix products in bfloat16 through oneDNN; weights, BatchNorm statistics and the loss stay float32) or `auto` (bfloat16 when the step is compiled and the CPU has AVX512-BF16 or AMX, else float32). TensorFlow runs bfloat16 only on AVX-512 CPUs: elsewhere `bfloat16` is refused before the run starts.',
    PRECISION_SETTINGS,
    { default: 'auto' },
  );
}
