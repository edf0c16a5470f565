/**
 * The pretraining recipe: its schema (types, defaults, ranges, descriptions)
 * and the TypeScript type of a resolved recipe.
 */
import {
  type CompileSetting,
  compileSchema,
  type DivergenceLimits,
  divergenceSchema,
  lrField,
  type OptimizerConfig,
  optimizerSchema,
  type PrecisionSetting,
  precisionSchema,
  type ScheduleConfig,
  scheduleSchema,
} from './optimizer-schema.js';
import { type ObjectField, s } from './schema.js';

export interface PretrainRecipe {
  name: string | null;
  seed: number;
  task: { id: string; options: Record<string, unknown> };
  backbone: {
    arch: 'resnet18' | 'resnet34' | 'resnet50';
    widthMultiplier: number;
    stem: 'imagenet' | 'small';
  };
  input: { size: number; channels: 1 | 3; mean: number[] | null; std: number[] | null };
  /** Continued pretraining: start the backbone from these weights instead of a random init. */
  init: { weights: string | null; backboneLrMultiplier: number; warmEpochs: number };
  data: {
    batchSize: number;
    limit: number | null;
    dropLast: boolean;
    workers: number | null;
    prefetch: number;
    cacheSize: number | null;
  };
  train: {
    epochs: number;
    maxStepsPerEpoch: number | null;
    optimizer: OptimizerConfig;
    schedule: ScheduleConfig;
    /** Epoch (0-based) -> learning rate for that whole epoch; keys are strings after YAML. */
    lrOverrides: Record<string, number>;
    gradClipNorm: number;
    checkpointEveryEpochs: number;
    checkpointEverySteps: number;
    keepCheckpoints: number;
    divergence: DivergenceLimits;
    compile: CompileSetting;
    precision: PrecisionSetting;
  };
  monitor: {
    knn: { k: number; temperature: number; bankImages: number; queryImages: number; everyEpochs: number };
    collapse: { everySteps: number; minRatio: number | null };
    onlineProbe: { enabled: boolean; learningRate: number; weightDecay: number };
  };
}

/** Schema of a pretraining recipe (`selfsup pretrain <recipe.yaml>`). */
export const PRETRAIN_SCHEMA: ObjectField = s.object('A pretraining recipe.', {
  name: s.string('A name for the run; the run folder is `<name>-<timestamp>` (default: the recipe file name).', {
    optional: true,
  }),
  seed: s.integer('Run seed: every random choice (init, shuffles, augmentations) derives from it.', {
    min: 0,
    max: 2 ** 31 - 1,
    default: 0,
  }),
  task: s.object('The pretext task.', {
    id: s.string(
      'Registered task id: `rotation`, `contrastive`, `jigsaw`, `byol`, `simsiam`, `barlow-twins`, `vicreg`, `moco` or `dino` (or a task you registered).',
    ),
    options: s.any("Task options, checked by the task plugin's `validate()` (see each task's options below).", {
      default: {},
    }),
  }),
  backbone: s.object('The ResNet backbone being pretrained.', {
    arch: s.oneOf('Architecture.', ['resnet18', 'resnet34', 'resnet50'], { default: 'resnet18' }),
    widthMultiplier: s.number('Multiplies every stage width (64 -> 64 x this); < 1 for small budgets.', {
      min: 0,
      max: 8,
      exclusiveMin: true,
      default: 1,
    }),
    stem: s.oneOf(
      '`imagenet`: 7x7/2 conv + max pool (96+ px photos); `small`: 3x3/1 conv, no pool (28-64 px images).',
      ['imagenet', 'small'],
      { default: 'imagenet' },
    ),
  }),
  input: s.object('The network input.', {
    size: s.integer('Side length of the square network input in px.', { min: 8, max: 1024, default: 32 }),
    channels: s.integer('1 (grayscale) or 3 (RGB); images are converted.', { min: 1, max: 3, default: 3 }),
    mean: s.array('Per-channel mean after scaling pixels to [0, 1] (default 0.5 each).', s.number('mean'), {
      minItems: 1,
      maxItems: 3,
      optional: true,
    }),
    std: s.array(
      'Per-channel std after scaling pixels to [0, 1] (default 0.5 each).',
      s.number('std', { min: 0, exclusiveMin: true }),
      {
        minItems: 1,
        maxItems: 3,
        optional: true,
      },
    ),
  }),
  init: s.object('Continued pretraining: start the backbone from existing weights (heads still start at random).', {
    weights: s.string(
      'A selfsup backbone or run folder, a .safetensors file or a PyTorch checkpoint (.pth/.ckpt; `file#key` ' +
        'picks one of several backbones); its architecture, stem, channels and width must match `backbone`. ' +
        'Unset = random init. `selfsup pretrain --init <weights>` sets it.',
      { optional: true },
    ),
    backboneLrMultiplier: s.number(
      'Backbone learning rate = this x the schedule, during the first `warmEpochs` epochs (heads use the ' +
        'schedule), so random heads do not wreck the imported features.',
      { min: 0, max: 1, default: 1 },
    ),
    warmEpochs: s.integer('Epochs during which `backboneLrMultiplier` applies (0 = never).', {
      min: 0,
      max: 100000,
      default: 0,
    }),
  }),
  data: s.object('Loading the unlabeled images.', {
    batchSize: s.integer('Images per batch (before the task makes views).', { min: 1, max: 65536, default: 256 }),
    limit: s.integer('Use only this many images (a seeded random subset); unset = all.', { min: 1, optional: true }),
    dropLast: s.boolean('Drop the last incomplete batch of an epoch.', { default: true }),
    workers: s.integer('Worker threads for decode + augment; unset = cores - 1.', { min: 0, max: 256, optional: true }),
    prefetch: s.integer('Batches prepared ahead.', { min: 0, max: 64, default: 2 }),
    cacheSize: s.integer('Keep decoded images up to this side length in memory (small-image datasets).', {
      min: 1,
      optional: true,
    }),
  }),
  train: s.object('The optimisation.', {
    epochs: s.integer('Number of epochs.', { min: 1, max: 100000, default: 10 }),
    maxStepsPerEpoch: s.integer('Cap on steps per epoch (quick runs); unset = the whole epoch.', {
      min: 1,
      optional: true,
    }),
    optimizer: optimizerSchema('Optimizer over the backbone and head variables.', {
      name: 'sgd',
      lr: 0.1,
      weightDecay: 0.0005,
      nesterov: false,
    }),
    schedule: scheduleSchema('Learning-rate schedule (per step).'),
    lrOverrides: s.map(
      'Per-epoch learning-rate override: `{epoch: lr}` (0-based epochs) replaces the schedule for that whole epoch. Change it between runs or on resume (also `--lr-override E=LR`).',
      'integer',
      lrField('learning rate'),
      { minKey: 0, default: {} },
    ),
    gradClipNorm: s.number('Clip gradients to this global L2 norm; 0 = no clipping.', { min: 0, default: 0 }),
    checkpointEveryEpochs: s.integer('Write a checkpoint every N epochs (and always after the last).', {
      min: 1,
      default: 1,
    }),
    checkpointEverySteps: s.integer('Also write a checkpoint every N steps inside an epoch; 0 = off.', {
      min: 0,
      default: 0,
    }),
    keepCheckpoints: s.integer('Keep the newest N checkpoints.', { min: 1, default: 3 }),
    divergence: divergenceSchema(),
    compile: compileSchema(
      'a task with a compiled step (rotation with its linear head, contrastive, barlow-twins, vicreg, simsiam, and byol, moco and dino with their momentum target, queue and centre in the graph and dino with its local views as a second image input; jigsaw trains eagerly), a ResNet, heads of linear, weight-normalised linear, BatchNorm, ReLU and L2-normalisation blocks, SGD, LARS, Adam or AdamW (per-parameter bias correction, as the eager optimizer), no online probe, no warm-up parameter groups',
    ),
    precision: precisionSchema(),
  }),
  monitor: s.object('Monitoring that tells whether pretraining works.', {
    knn: s.object('kNN accuracy on a labelled validation set (only when one is given: `--val <data>`).', {
      k: s.integer('Neighbours that vote.', { min: 1, max: 1000, default: 20 }),
      temperature: s.number('Vote weight exp(similarity / temperature).', {
        min: 0,
        max: 10,
        exclusiveMin: true,
        default: 0.1,
      }),
      bankImages: s.integer('Labelled images whose features form the memory bank.', { min: 1, default: 1000 }),
      queryImages: s.integer('Labelled images classified against the bank.', { min: 1, default: 500 }),
      everyEpochs: s.integer('Run the monitor every N epochs (and after the last).', { min: 1, default: 1 }),
    }),
    collapse: s.object('Collapse alarm: spread of L2-normalised embeddings.', {
      everySteps: s.integer('Measure every N steps; 0 = off.', { min: 0, default: 20 }),
      minRatio: s.number(
        "Warn when the mean per-dimension std of normalised embeddings falls below this fraction of 1/sqrt(D) (a healthy spread is ~1/sqrt(D), a collapsed one ~0); unset = the task's own threshold (0.1 when it declares none).",
        { min: 0, max: 1, optional: true },
      ),
    }),
    onlineProbe: s.object(
      "Online linear probe: a linear classifier trained on each batch's detached backbone features, on the batch's labelled images (only when the pretraining images carry labels); its accuracy before each update is logged as `probeAccuracy`.",
      {
        enabled: s.boolean('Train the probe when the pretraining images have labels.', { default: true }),
        learningRate: s.number('SGD learning rate of the probe (momentum 0.9).', {
          min: 0,
          max: 10,
          exclusiveMin: true,
          default: 0.1,
        }),
        weightDecay: s.number('L2 weight decay of the probe.', { min: 0, max: 1, default: 0.0005 }),
      },
    ),
  }),
});
