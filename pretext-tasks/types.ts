/**
 * The pretext-task plugin interface. The training loop knows nothing
 * task-specific: it asks the task which augmented views to load for each image,
 * which heads to build, and, for each batch, for a loss and metrics.
 *
 * A user adds a task by writing one file that exports a `PretextTask` and
 * registering it (`registerTask(myTask)`).
 */
import type * as tf from '@tensorflow/tfjs';
import type { Backbone, Head } from '../src/backbones/types.js';
import type { InputSpec, PipelineSpec } from '../src/data/types.js';
import type { GraphBuilder } from '../src/engine/graph-runtime.js';
import type { Rng } from '../src/util/rng.js';

export type { InputSpec };

export interface StepContext<Heads> {
  backbone: Backbone;
  heads: Heads;
  /** One tensor per view from `views()`, float32 NHWC (jigsaw: [B, T, h, w, C]). */
  views: tf.Tensor[];
  training: boolean;
  /** Host-side randomness for this step (e.g. which permutation), derived from the run seed. */
  rng: Rng;
  /**
   * The momentum (EMA) target, when the task declares one in `state()`: a copy of
   * the backbone and of the listed heads, never trained by gradients; the loop
   * moves it towards the online weights after each step.
   */
  target?: { backbone: Backbone; heads: Partial<Heads> };
  /** Current values of the buffers the task declares in `state()` (queues, centres). */
  buffers?: Record<string, tf.Tensor>;
  /** Where training is, for schedules inside a task (e.g. DINO's teacher temperature). */
  progress?: TrainingProgress;
}

/** The position of a step in the run. */
export interface TrainingProgress {
  /** 0-based index of this step in the run. */
  globalStep: number;
  /** Steps of the whole run (epochs x steps per epoch). */
  totalSteps: number;
  /** 0-based epoch of this step. */
  epoch: number;
  epochs: number;
  stepsPerEpoch: number;
}

/**
 * A buffer kept across steps: owned, checkpointed and disposed by the loop, read
 * by the task through `ctx.buffers` and replaced by the step's `bufferUpdates`.
 */
export interface BufferSpec {
  shape: number[];
  dtype?: 'float32' | 'int32';
  /**
   * Initial value: `zeros`, or `unit-rows` (rows of a [N, D] buffer drawn from a
   * standard normal and L2-normalised, e.g. a MoCo queue). Drawn from the run seed.
   */
  init: 'zeros' | 'unit-rows';
}

/** State a task needs across steps; the loop creates, updates, checkpoints and disposes it. */
export interface TaskStateSpec {
  /**
   * A momentum target network (BYOL, MoCo, DINO): a copy of the backbone and of
   * the heads named here, started equal to the online weights. After each step
   * its trainable weights become m * target + (1 - m) * online, with m rising
   * from `momentumStart` to `momentumEnd` along a half cosine over the run
   * (BYOL: m = 1 - (1 - m0)(cos(pi k / K) + 1) / 2); BatchNorm running
   * statistics of the target follow its own forward passes.
   */
  target?: { heads: string[]; momentumStart: number; momentumEnd: number };
  /** Named buffers (queues, memory banks, centres). */
  buffers?: Record<string, BufferSpec>;
}

export interface StepOutput {
  /** Scalar loss to minimise. */
  loss: tf.Scalar;
  /** Scalars to log, e.g. { accuracy }. The loop reads them after the step. */
  metrics: Record<string, tf.Scalar>;
  /**
   * Optional [N, D] embeddings of this batch (before the head) used by the loop's
   * collapse alarm (spread of embeddings) and online linear probe; the first B rows
   * are the batch's B images in order.
   */
  embeddings?: tf.Tensor2D;
  /**
   * New values of buffers declared in `state()` (same shape and dtype); the loop
   * assigns them after the weights are updated, never after a diverged step.
   */
  bufferUpdates?: Record<string, tf.Tensor>;
}

export interface PretextTask<Options extends object = object, Heads = Record<string, Head>> {
  /** Registry id used in recipes: `rotation`, `contrastive`, `jigsaw`. */
  readonly id: string;
  /** Paper reference, and the one sentence of it the code implements. */
  readonly paper: string;
  /**
   * Optional: the collapse alarm's threshold for this method, as a fraction of
   * 1/sqrt(D) (used when recipe.monitor.collapse.minRatio is unset; default 0.1).
   */
  readonly collapseMinRatio?: number;
  /** Typed defaults: every option has one. */
  readonly defaults: Options;
  /** Documentation of each option for the recipes reference: description and range. */
  readonly optionDocs: Record<keyof Options & string, string>;
  /**
   * Checks user options (merged over defaults) and returns them resolved.
   * Throws UsageError naming the key: `Expected ... for task.options.temperature but received ...`.
   */
  validate(options: unknown): Options;
  /** The augmentation pipelines the loader produces per image, one per view. */
  views(options: Options, input: InputSpec): PipelineSpec[];
  /** Builds the task's heads for a backbone with `featureDim` features. */
  createHeads(options: Options, featureDim: number, rng: Rng): Heads;
  /** All variables of the heads (for the optimizer and checkpoints), and their disposal. */
  headModules(heads: Heads): Record<string, Head>;
  /**
   * Optional: state kept across steps (a momentum target, buffers). Tasks
   * without it (rotation, SimCLR, SimSiam) leave it out.
   */
  state?(options: Options, featureDim: number): TaskStateSpec;
  /** One step's forward pass: runs inside tf.tidy, must not await. */
  step(ctx: StepContext<Heads>, options: Options): StepOutput;
  /**
   * Optional: the same step as a compiled TensorFlow graph (src/train/compiled-step.ts).
   * Tasks without it train eagerly.
   */
  compiled?: CompiledTaskStep<Options>;
}

/**
 * A task's step split for a compiled graph: the host prepares the images the
 * backbone sees and the targets (inside tf.tidy, from the step's views and rng),
 * and the graph computes the loss from the backbone's features.
 */
export interface CompiledTaskStep<Options> {
  /** Why these options cannot be compiled (e.g. an unsupported head), or undefined. */
  problem(options: Options): string | undefined;
  /**
   * Per-example shape of the targets fed to the graph (e.g. [4] for one-hot rotation labels).
   * Leave it out when the loss needs none (the two-view methods): the graph then gets no targets.
   */
  targetShape?(options: Options): number[];
  /**
   * Optional: how many separate backbone forward passes the images make (default 1). The
   * images are split into that many equal parts along the batch, each normalised by its
   * own BatchNorm batch statistics and the running statistics updated pass after pass, as
   * an eager step that calls the backbone once per view (Barlow Twins, VICReg, SimSiam);
   * `features` holds the passes' features one after the other.
   */
  forwardPasses?(options: Options): number;
  /**
   * Optional, for a task that keeps state (`state()`: a momentum target, buffers): the graph
   * runs it (CompiledStateGraph), and without this a task with state trains eagerly.
   * `targetForwardPasses`: the target backbone's forward passes over equal parts of
   * `targetImages` (default 1), as `forwardPasses` for the online backbone.
   */
  stateful?: { targetForwardPasses?(options: Options): number };
  /**
   * Optional: the side [h, w] of a second set of images of another size (DINO's local views)
   * for an input of side [H, W], or undefined for none. They go through the online backbone
   * in one pass of their own after `images` (BatchNorm's running statistics chained on, as an
   * eager step's separate call), and their features reach `graph` as `extra.secondFeatures`.
   */
  secondImageSize?(options: Options, imageSize: [number, number]): [number, number] | undefined;
  /**
   * Optional: names of scalars fed per step (DINO's teacher temperature, which follows the
   * epoch); `inputs` returns their values and `graph` gets them as `extra.scalars`.
   */
  scalars?(options: Options): string[];
  /**
   * Host side, inside tf.tidy: backbone input images [N, H, W, C] and, with `targetShape`,
   * float32 targets [N, ...targetShape]; with a momentum target, the images its backbone
   * sees, `targetImages` [M, H, W, C] (may be `images` itself); with `secondImageSize`,
   * `secondImages` [L, h, w, C]; with `scalars`, their values. `progress` is the step's place
   * in the run (the pretraining loop gives it).
   */
  inputs(
    ctx: { views: tf.Tensor[]; rng: Rng; progress?: TrainingProgress },
    options: Options,
  ): {
    images: tf.Tensor4D;
    targets?: tf.Tensor;
    targetImages?: tf.Tensor4D;
    secondImages?: tf.Tensor4D;
    scalars?: Record<string, number>;
  };
  /**
   * Graph side: the loss (a scalar output) and scalar metric outputs from `features` [N, D]
   * and `targets` (undefined without `targetShape`); `head(name, x)` applies the task's head
   * `name` to x (each call a pass of its own through the head's BatchNorm, as an eager
   * `apply`). `embeddings`: the rows the eager step returns as its embeddings (the
   * collapse alarm's), when they are not all of `features` (e.g. the first view's [B, D]).
   */
  graph(
    g: GraphBuilder,
    features: string,
    targets: string | undefined,
    head: (name: string, x: string) => string,
    options: Options,
    /** The task's state in the graph (a `stateful` task only). */
    state?: CompiledStateGraph,
    /** The second images' pooled features [L, D] (`secondImageSize`) and the fed scalars' placeholders (`scalars`). */
    extra?: { secondFeatures?: string; scalars: Record<string, string> },
  ): {
    loss: string;
    metrics: Record<string, string>;
    embeddings?: string;
    bufferUpdates?: Record<string, CompiledBufferUpdate>;
  };
}

/**
 * A buffer's new value in a compiled step: a graph output of the buffer's shape and dtype,
 * or a row update — `rows` [N] (int32 row indices) replaced by `values` [N, ...] — which
 * leaves the other rows untouched (a queue's enqueue).
 */
export type CompiledBufferUpdate = string | { rows: string; values: string };

/**
 * A stateful task's state inside its compiled graph (src/train/compiled-task-state.ts).
 * The graph returns `bufferUpdates` (CompiledBufferUpdate: new values or row updates),
 * assigned after the step as the eager loop assigns a step's `bufferUpdates`; the target
 * moves towards the updated online weights by the step's momentum after the update.
 */
export interface CompiledStateGraph {
  /**
   * The momentum target's pooled features [M, D] of `targetImages` (BatchNorm with batch
   * statistics, its running statistics updated, as the eager target's forward passes).
   */
  targetFeatures?: string;
  /** Applies the target's copy of head `name` to x (a pass through its BatchNorm, as an eager `apply`). */
  targetHead?: (name: string, x: string) => string;
  /** The buffers' current values, by name. */
  buffers: Record<string, string>;
}

/** The heads of a method with one projector (SimCLR, MoCo, Barlow Twins, VICReg, DINO). */
export interface ProjectionHeads {
  projection: Head;
}

/** The heads of a method with a projector and a predictor on top of it (BYOL, SimSiam). */
export interface ProjectionPredictionHeads extends ProjectionHeads {
  prediction: Head;
}

/** The sizes of a projector MLP (each method documents its own defaults in `optionDocs`). */
export interface ProjectorOptions {
  /** Output size of the projector. */
  projectionDim: number;
  /** Hidden width of the projector. */
  hiddenDim: number;
}

/** The options of an InfoNCE method's projector (SimCLR, MoCo); each documents its own defaults in `optionDocs`. */
export interface ContrastiveHeadOptions {
  /** Temperature of the InfoNCE / NT-Xent softmax. */
  temperature: number;
  /** Output size of the projector. */
  projectionDim: number;
  /** Hidden width of the projector; 'featureDim' uses the backbone's feature size. */
  hiddenDim: number | 'featureDim';
}

/** A momentum target whose m rises from `momentum` at the first step to `momentumEnd` at the last along a cosine. */
export interface MomentumTargetOptions {
  momentum: number;
  momentumEnd: number;
}
