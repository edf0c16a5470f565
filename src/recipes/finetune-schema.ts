/**
 * The finetuning recipe (`recipes/finetune-*.yaml`): its type and schema (types,
 * defaults, ranges, descriptions). Its `train` section speaks the pretraining
 * dialect (optimizer-schema.ts); only the defaults differ.
 */
import type { LabeledViewName } from '../data/augment/presets.js';
import type { PipelineSpec } from '../data/types.js';
import * as optimization from './optimizer-schema.js';
import { type ObjectField, s } from './schema.js';

export interface FinetuneRecipe {
  name: string | null;
  seed: number;
  input: { size: number | null; mean: number[] | null; std: number[] | null };
  head: { hidden: number[] };
  stages: Array<{ epochs: number; trainable: string[] }>;
  train: {
    batchSize: number;
    stepsPerEpoch: number | null;
    optimizer: optimization.OptimizerConfig;
    backboneLrMultiplier: number;
    schedule: optimization.ScheduleConfig;
    gradClipNorm: number;
    emaDecay: number;
    divergence: optimization.DivergenceLimits;
    checkpointEveryEpochs: number;
    keepCheckpoints: number;
    compile: optimization.CompileSetting;
    precision: optimization.PrecisionSetting;
  };
  loss: { type: 'cross-entropy' | 'focal'; labelSmoothing: number; gamma: number };
  balance: {
    classWeights: 'none' | 'inverse-frequency' | 'effective-number';
    beta: number;
    sampler: 'shuffle' | 'class-balanced';
  };
  augment: { train: LabeledViewName | PipelineSpec };
  fixmatch: {
    enabled: boolean;
    threshold: number;
    ratio: number;
    weight: number;
    warmupEpochs: number;
    thresholdSchedule: 'fixed' | 'self-adaptive';
    distributionAlignment: boolean;
    emaMomentum: number;
    weakView: PipelineSpec | null;
    strongView: PipelineSpec | null;
  };
  selfTraining: {
    rounds: number;
    threshold: number;
    maxPerClass: number | null;
    labeledShare: number;
    studentFixmatch: boolean;
  };
  auxiliary: { task: string | null; options: Record<string, unknown>; weight: number; images: number };
  probe: { epochs: number; lr: number; batchSize: number };
  eval: { holdout: number; batchSize: number; calibrationBins: number };
  labelProblems: { enabled: boolean; k: number; folds: number };
}

/**
 * Epochs of the default stage (head only). 30: what a recipe without `stages`
 * has always resolved to (a second set of library defaults said 10, used only by
 * programs calling the training loop directly); head-only epochs on features
 * computed once cost seconds.
 */
export const FINETUNE_HEAD_ONLY_EPOCHS = 30;

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
    { minItems: 1, default: [{ epochs: FINETUNE_HEAD_ONLY_EPOCHS, trainable: ['head'] }] },
  ),
  train: s.object('The optimisation (the same dialect as pretraining recipes).', {
    batchSize: s.integer('Labeled images per step.', { min: 2, max: 65536, default: 64 }),
    stepsPerEpoch: s.integer(
      'Steps per epoch; unset = one pass over the labeled images. Set it to give every label budget the same compute.',
      { min: 1, max: 1000000, optional: true },
    ),
    optimizer: optimization.optimizerSchema(
      "One optimizer for the whole run (probe and stages): its state is kept per variable, so a variable that joins in a later stage starts its own moments there. `lr` is the head's peak learning rate.",
      { name: 'adam', lr: 0.001, weightDecay: 0, nesterov: false },
    ),
    backboneLrMultiplier: s.number(
      'Parameter groups: the backbone trains at optimizer.lr x this, the head at optimizer.lr (0 freezes the backbone in effect).',
      { min: 0, max: 10, default: 0.1 },
    ),
    schedule: optimization.scheduleSchema('Learning-rate schedule of the stages (per step, over all stages).'),
    gradClipNorm: s.number('Clip gradients to this global L2 norm; 0 = no clipping.', { min: 0, default: 0 }),
    emaDecay: s.number(
      "Evaluate and save an exponential moving average of the weights (BatchNorm statistics included) over the stages' steps: step k of n weighted by decay^(n - k), bias-corrected; 0 = the last step's weights. With a cosine schedule to 0 the average is close to the last weights (measured: no gain for finetune-few-labels.yaml).",
      { min: 0, max: 0.99999, default: 0 },
    ),
    divergence: optimization.divergenceSchema(),
    checkpointEveryEpochs: s.integer(
      'With an output folder (`selfsup finetune`), write a checkpoint every N epochs of the stages (and after the probe and the last epoch); `--resume` continues from the newest.',
      { min: 1, default: 1 },
    ),
    keepCheckpoints: s.integer('Keep the newest N checkpoints.', { min: 1, default: 2 }),
    compile: optimization.compileSchema(
      "a ResNet backbone, a linear or MLP head, SGD, Adam or AdamW, no FixMatch, stages whose batches go through the backbone — a head-only run on precomputed features and the LP-FT probe stay eager; cross-entropy with label smoothing, focal loss and class weights compile. Evaluation and feature extraction use the compiled forward pass wherever the graph addon is built, in float32 or in the compiled step's precision",
    ),
    precision: optimization.precisionSchema(),
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
    train: s.any(
      '`none`, `weak` (crop 80-100% + flip), `light` (crop 80-100% + flip + brightness/contrast jitter 0.4), `medium` (crop 50-100% + flip + brightness/contrast jitter 0.4), `strong` (crop 35-100%, flip, jitter, Cutout on half the images), or a list of augmentation steps (as in pretraining recipes).',
      {
        default: 'none',
      },
    ),
  }),
  fixmatch: s.object('Semi-supervised FixMatch on `--unlabeled` (Sohn et al., 2020).', {
    enabled: s.boolean('Use the unlabeled images.', { default: false }),
    threshold: s.number('Pseudo-label confidence threshold tau.', { min: 0, max: 1, default: 0.95 }),
    ratio: s.integer('Unlabeled images per labeled image in a step (mu).', { min: 1, max: 64, default: 3 }),
    weight: s.number('Weight lambda_u of the unlabeled loss.', { min: 0, max: 100, default: 1 }),
    warmupEpochs: s.number('lambda_u ramps linearly from 0 over these epochs.', { min: 0, max: 10000, default: 1 }),
    thresholdSchedule: s.oneOf(
      '`fixed`: keep a pseudo-label when its confidence is at least `threshold`; `self-adaptive` (FreeMatch, Wang et al., 2023): class-wise thresholds from running means of the confidence, tau_t(c) = p_t(c) / max p_t x tau_t, starting at 1/K (`threshold` is then unused).',
      ['fixed', 'self-adaptive'],
      { default: 'fixed' },
    ),
    distributionAlignment: s.boolean(
      'Distribution alignment (ReMixMatch, Berthelot et al., 2020): scale the weak-view predictions by the labeled class frequencies over the running mean of the predictions on unlabeled images, then renormalise.',
      { default: false },
    ),
    emaMomentum: s.number(
      'Momentum of the running means (alignment and self-adaptive thresholds), per step. FreeMatch: 0.999; short runs adapt faster with 0.99.',
      { min: 0, max: 0.999999, default: 0.999 },
    ),
    weakView: pipelineOrNull('Weak view steps (default: crop 0.8-1 + flip).'),
    strongView: pipelineOrNull(
      'Strong view steps (default: crop, flip, color jitter, grayscale, blur, solarize, Cutout).',
    ),
  }),
  selfTraining: s.object(
    'Self-training rounds on `--unlabeled` (a teacher pseudo-labels the unlabeled images, a student trains on labeled + pseudo-labeled): round 0 finetunes by this recipe; each of `rounds` rounds then takes the last model as teacher, keeps the unlabeled images it predicts with at least `threshold` confidence (at most `maxPerClass` per predicted class, most confident first) and finetunes a new classifier from the same backbone on the labeled and those pseudo-labeled images, by this recipe.',
    {
      rounds: s.integer('Student rounds after the first finetune (0 = no self-training).', {
        min: 0,
        max: 20,
        default: 0,
      }),
      threshold: s.number("Keep a pseudo-label when the teacher's probability is at least this.", {
        min: 0,
        max: 1,
        default: 0.9,
      }),
      maxPerClass: s.integer(
        'At most this many pseudo-labeled images per predicted class, most confident first (unset = no cap; a cap keeps the classes balanced).',
        { min: 1, optional: true },
      ),
      labeledShare: s.number(
        "Share of the student's training set that is labeled images: they are repeated until they make up about this share (0 = each once). A few labels among thousands of pseudo-labels are otherwise seen a few times instead of the hundred times the teacher saw them.",
        { min: 0, max: 0.95, default: 0.5 },
      ),
      studentFixmatch: s.boolean(
        'Whether the students run FixMatch too when the recipe turns it on (`fixmatch.enabled`). `false`: round 0 is FixMatch, the students train on the labeled and pseudo-labeled images alone (a noisy student of the FixMatch teacher: no unlabeled forward passes, a few minutes where FixMatch takes twenty).',
        { default: true },
      ),
    },
  ),
  auxiliary: s.object(
    "A pretext task trained alongside the classifier, as a regulariser of the backbone (S4L, Zhai et al., 2019; ReMixMatch's rotation loss, Berthelot et al., 2020): in every stage that trains the backbone, the task's loss on `images` images of the step (the first of its unlabeled images with FixMatch, else of its labeled batch, in the task's own views) is added to the loss with `weight`. The task gets fresh heads; they train with the classifier's head and are checkpointed, not exported.",
    {
      task: s.string(
        'Registered pretext task id: `rotation` (use `options: {mode: random-one}` for one rotation per image), `contrastive`, `simsiam`, `barlow-twins`, `vicreg` (tasks with a momentum target or buffers — byol, moco, dino — are not supported here); unset = no auxiliary loss.',
        { optional: true },
      ),
      options: s.any("Task options, checked by the task plugin's `validate()` (as in pretraining recipes).", {
        default: {},
      }),
      weight: s.number('Weight of the task loss in the total loss.', { min: 0, max: 100, default: 0.5 }),
      images: s.integer('Images per step the task sees (before the task makes its views or rotations).', {
        min: 1,
        max: 65536,
        default: 64,
      }),
    },
  ),
  probe: s.object(
    'A linear probe before the stages (LP-FT, Kumar et al., 2022): the head trains on features of the un-augmented labeled images computed once, with its own cosine schedule and one pass over the labeled images per epoch; the stages then start from a trained head instead of a random one.',
    {
      epochs: s.integer('Epochs of the probe (0 = no probe).', { min: 0, max: 100000, default: 0 }),
      lr: optimization.lrField(
        'Peak learning rate of the probe (cosine to 0 over its epochs, no warmup; same optimizer as the stages).',
        {
          default: 0.01,
        },
      ),
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
