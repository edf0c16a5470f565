/**
 * The finetuning recipe (`recipes/finetune-*.yaml`): its schema (types,
 * defaults, ranges, descriptions — checked by src/recipes/schema.ts, so an
 * unknown key or a wrong type names the key) and the conversion to TrainOptions.
 */
import { validatePipeline } from '../data/augment/pipeline.js';
import type { PipelineSpec } from '../data/types.js';
import { loadRecipeFile, RecipeError, validateRecipe } from '../recipes/load.js';
import { type ObjectField, SchemaError, s } from '../recipes/schema.js';
import { UsageError } from '../util/errors.js';
import { strongView, weakView } from './fixmatch.js';
import { TRAIN_DEFAULTS, type TrainOptions } from './train.js';

export interface FinetuneRecipe {
  name: string | null;
  seed: number;
  input: { size: number | null; mean: number[] | null; std: number[] | null };
  head: { hidden: number[] };
  stages: Array<{ epochs: number; trainable: string[] }>;
  train: {
    batchSize: number;
    optimizer: 'sgd' | 'momentum' | 'adam';
    learningRate: number;
    backboneLrMultiplier: number;
    momentum: number;
    weightDecay: number;
    schedule: 'cosine' | 'constant';
    warmupEpochs: number;
    stepsPerEpoch: number | null;
  };
  loss: { type: 'cross-entropy' | 'focal'; labelSmoothing: number; gamma: number };
  balance: {
    classWeights: 'none' | 'inverse-frequency' | 'effective-number';
    beta: number;
    sampler: 'shuffle' | 'class-balanced';
  };
  augment: { train: 'none' | 'weak' | PipelineSpec };
  fixmatch: {
    enabled: boolean;
    threshold: number;
    ratio: number;
    weight: number;
    warmupEpochs: number;
    weakView: PipelineSpec | null;
    strongView: PipelineSpec | null;
  };
  probe: { epochs: number; learningRate: number; batchSize: number };
  eval: { holdout: number; batchSize: number; calibrationBins: number };
  labelProblems: { enabled: boolean; k: number; folds: number };
}

const pipelineOrNull = (description: string) => s.any(description, { optional: true });

/** Schema of a finetuning recipe (`selfsup finetune <recipe.yaml>`). */
export const FINETUNE_SCHEMA: ObjectField = s.object('A finetuning recipe.', {
  name: s.string('A name for the model (default: the recipe file name).', { optional: true }),
  seed: s.integer('Seed of every random choice (head init, shuffles, augmentations, holdout split).', {
    min: 0,
    max: 2 ** 31 - 1,
    default: 0,
  }),
  input: s.object('The network input; unset values come from the backbone manifest (size, mean, std).', {
    size: s.integer('Side length of the square input in px (default: the backbone manifest, else 32).', {
      min: 8,
      max: 1024,
      optional: true,
    }),
    mean: s.array('Per-channel mean on [0, 1] pixels (default: the backbone manifest).', s.number('mean'), {
      minItems: 1,
      maxItems: 3,
      optional: true,
    }),
    std: s.array('Per-channel std (default: the backbone manifest).', s.number('std', { min: 0, exclusiveMin: true }), {
      minItems: 1,
      maxItems: 3,
      optional: true,
    }),
  }),
  head: s.object('The classifier head on the pooled features.', {
    hidden: s.array(
      'Hidden sizes of an MLP head (linear -> BN -> ReLU each); [] = a linear head.',
      s.integer('size', { min: 1 }),
      {
        default: [],
      },
    ),
  }),
  stages: s.array(
    'Training stages in order: `epochs` with the variables under `trainable` trained (`head`, `layer4`..`layer1`, `conv1`, `bn1`, `backbone`, `all`). Head-only stages with no augmentation train on features computed once (a linear probe).',
    s.object('A stage.', {
      epochs: s.integer('Epochs of this stage.', { min: 1, max: 100000 }),
      trainable: s.array('Name prefixes of the trained variables.', s.string('prefix'), { minItems: 1 }),
    }),
    { minItems: 1, default: [{ epochs: 30, trainable: ['head'] }] },
  ),
  train: s.object('The optimisation.', {
    batchSize: s.integer('Labeled images per step.', { min: 2, max: 65536, default: TRAIN_DEFAULTS.batchSize }),
    optimizer: s.oneOf('`adam`, `momentum` (SGD with Nesterov momentum) or `sgd`.', ['adam', 'momentum', 'sgd'], {
      default: TRAIN_DEFAULTS.optimizer,
    }),
    learningRate: s.number('Peak learning rate of the head.', {
      min: 0,
      max: 10,
      exclusiveMin: true,
      default: TRAIN_DEFAULTS.learningRate,
    }),
    backboneLrMultiplier: s.number('Backbone learning rate = learningRate x this (0 freezes it in effect).', {
      min: 0,
      max: 10,
      default: TRAIN_DEFAULTS.backboneLrMultiplier,
    }),
    momentum: s.number('Momentum (optimizer `momentum`).', { min: 0, max: 0.9999, default: TRAIN_DEFAULTS.momentum }),
    weightDecay: s.number('Decoupled weight decay on conv and dense kernels.', { min: 0, max: 1, default: 0 }),
    schedule: s.oneOf('`cosine` (to 0 over all stages) or `constant`.', ['cosine', 'constant'], { default: 'cosine' }),
    warmupEpochs: s.number('Linear learning-rate warm-up (epochs, fractions allowed).', {
      min: 0,
      max: 1000,
      default: 0,
    }),
    stepsPerEpoch: s.integer(
      'Steps per epoch; unset = one pass over the labeled images. Set it to give every label budget the same compute.',
      { min: 1, max: 1000000, optional: true },
    ),
  }),
  loss: s.object('The supervised loss.', {
    type: s.oneOf(
      '`cross-entropy` or `focal` (Lin et al., 2017; class weights become its per-class alpha).',
      ['cross-entropy', 'focal'],
      {
        default: 'cross-entropy',
      },
    ),
    labelSmoothing: s.number('Label smoothing eps for cross-entropy: target (1 - eps) one-hot + eps / K.', {
      min: 0,
      max: 0.99,
      default: 0,
    }),
    gamma: s.number('Focal loss focusing parameter.', { min: 0, max: 10, default: 2 }),
  }),
  balance: s.object('Class imbalance handling.', {
    classWeights: s.oneOf(
      'Per-class loss weights: `none`, `inverse-frequency` (N / (K n_k)), `effective-number` (Cui et al., 2019).',
      ['none', 'inverse-frequency', 'effective-number'],
      { default: 'none' },
    ),
    beta: s.number('beta of the effective number (1 - beta^n) / (1 - beta).', { min: 0, max: 0.99999, default: 0.999 }),
    sampler: s.oneOf(
      '`shuffle` (each image once per epoch) or `class-balanced` (classes drawn uniformly).',
      ['shuffle', 'class-balanced'],
      {
        default: 'shuffle',
      },
    ),
  }),
  augment: s.object('Augmentation of labeled training images.', {
    train: s.any('`none`, `weak` (crop + flip), or a list of augmentation steps (as in pretraining recipes).', {
      default: 'none',
    }),
  }),
  fixmatch: s.object('Semi-supervised FixMatch on `--unlabeled` (Sohn et al., 2020).', {
    enabled: s.boolean('Use the unlabeled images.', { default: false }),
    threshold: s.number('Pseudo-label confidence threshold tau.', { min: 0, max: 1, default: 0.95 }),
    ratio: s.integer('Unlabeled images per labeled image in a step (mu).', { min: 1, max: 64, default: 3 }),
    weight: s.number('Weight lambda_u of the unlabeled loss.', { min: 0, max: 100, default: 1 }),
    warmupEpochs: s.number('lambda_u ramps linearly from 0 over these epochs.', { min: 0, max: 10000, default: 1 }),
    weakView: pipelineOrNull('Weak view steps (default: crop 0.8-1 + flip).'),
    strongView: pipelineOrNull(
      'Strong view steps (default: crop, flip, color jitter, grayscale, blur, solarize, Cutout).',
    ),
  }),
  probe: s.object(
    'A linear probe before the stages (LP-FT, Kumar et al., 2022): the head trains on features of the un-augmented labeled images computed once, with its own cosine schedule and one pass over the labeled images per epoch; the stages then start from a trained head instead of a random one.',
    {
      epochs: s.integer('Epochs of the probe (0 = no probe).', { min: 0, max: 100000, default: 0 }),
      learningRate: s.number('Peak learning rate of the probe.', {
        min: 0,
        max: 10,
        exclusiveMin: true,
        default: 0.01,
      }),
      batchSize: s.integer('Labeled images per probe step.', { min: 2, max: 65536, default: 256 }),
    },
  ),
  eval: s.object('The evaluation report.', {
    holdout: s.number(
      'Without `--test`, hold out this fraction of each class for the report (0 = report on the training set).',
      {
        min: 0,
        max: 0.9,
        default: 0.2,
      },
    ),
    batchSize: s.integer('Images per evaluation batch.', { min: 1, max: 65536, default: 256 }),
    calibrationBins: s.integer('Bins of the expected calibration error.', { min: 2, max: 100, default: 15 }),
  }),
  labelProblems: s.object('Ranking of likely mislabeled training samples (label-review.arrow).', {
    enabled: s.boolean('Write label-review.arrow and the imbalance summary.', { default: true }),
    k: s.integer('Neighbours of the kNN vote.', { min: 1, max: 1000, default: 10 }),
    folds: s.integer('Folds of the out-of-fold classifier.', { min: 2, max: 50, default: 5 }),
  }),
});

function checkView(value: unknown, key: string, channels: 1 | 3): PipelineSpec {
  try {
    validatePipeline(value, channels, key);
  } catch (e) {
    if (e instanceof UsageError)
      throw new SchemaError(key, e.message.startsWith(key) ? e.message.slice(key.length + 2) : e.message);
    throw e;
  }
  return value as PipelineSpec;
}

/** Validates recipe data (already merged from `extends`); `file` prefixes errors. */
export function resolveFinetuneRecipe(data: unknown, file?: string): FinetuneRecipe {
  return validateRecipe<FinetuneRecipe>(FINETUNE_SCHEMA, data, file);
}

/** Reads a recipe file (with `extends`) and validates it; the name defaults to the file name. */
export function loadFinetuneRecipe(file: string): FinetuneRecipe {
  const recipe = loadRecipeFile<FinetuneRecipe>(file, FINETUNE_SCHEMA);
  recipe.name ??= file.replace(/^.*[\\/]/, '').replace(/\.ya?ml$/, '');
  return recipe;
}

/** The resolved input of a recipe given the backbone's manifest values. */
export function resolveInput(
  recipe: FinetuneRecipe,
  channels: 1 | 3,
  manifest: { inputSize: number | null; mean: number[]; std: number[] },
): { size: number; channels: 1 | 3; mean: number[]; std: number[] } {
  const mean = recipe.input.mean ?? manifest.mean;
  const std = recipe.input.std ?? manifest.std;
  for (const [key, values] of [
    ['mean', mean],
    ['std', std],
  ] as const) {
    if (values.length !== channels) {
      throw new SchemaError(
        `recipe.input.${key}`,
        `Expected a list of exactly ${channels} numbers (one per channel) but received [${values.join(', ')}]`,
      );
    }
  }
  return { size: recipe.input.size ?? manifest.inputSize ?? 32, channels, mean, std };
}

/** TrainOptions for a recipe and a resolved input. `file` prefixes errors. */
export function trainOptionsOf(
  recipe: FinetuneRecipe,
  input: { size: number; channels: 1 | 3; mean: number[]; std: number[] },
  file = 'recipe',
): TrainOptions {
  const { size, channels, mean, std } = input;
  try {
    const augment = recipe.augment.train;
    let trainView: PipelineSpec;
    if (augment === 'none') trainView = [];
    else if (augment === 'weak') trainView = weakView(size, mean, std);
    else if (typeof augment === 'string') {
      throw new SchemaError(
        'recipe.augment.train',
        `Expected "none", "weak" or a list of augmentation steps but received "${augment}" (string)`,
      );
    } else trainView = checkView(augment, 'recipe.augment.train', channels);
    const fm = recipe.fixmatch;
    return {
      stages: recipe.stages.map((st) => ({ epochs: st.epochs, trainable: st.trainable.slice() })),
      batchSize: recipe.train.batchSize,
      optimizer: recipe.train.optimizer,
      learningRate: recipe.train.learningRate,
      backboneLrMultiplier: recipe.train.backboneLrMultiplier,
      momentum: recipe.train.momentum,
      weightDecay: recipe.train.weightDecay,
      schedule: recipe.train.schedule,
      warmupEpochs: recipe.train.warmupEpochs,
      stepsPerEpoch: recipe.train.stepsPerEpoch ?? undefined,
      loss: { ...recipe.loss },
      classWeighting: recipe.balance.classWeights,
      effectiveNumberBeta: recipe.balance.beta,
      sampler: recipe.balance.sampler,
      trainView,
      fixmatch: fm.enabled
        ? {
            threshold: fm.threshold,
            ratio: fm.ratio,
            weight: fm.weight,
            warmupEpochs: fm.warmupEpochs,
            weakView: fm.weakView
              ? checkView(fm.weakView, 'recipe.fixmatch.weakView', channels)
              : weakView(size, mean, std),
            strongView: fm.strongView
              ? checkView(fm.strongView, 'recipe.fixmatch.strongView', channels)
              : strongView(size, mean, std),
          }
        : undefined,
      probe: recipe.probe.epochs > 0 ? { ...recipe.probe } : undefined,
      seed: recipe.seed,
    };
  } catch (e) {
    if (e instanceof SchemaError && file !== 'recipe') throw new RecipeError(file, e.message, e.keyPath);
    throw e;
  }
}
