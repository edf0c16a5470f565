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
}

export interface StepOutput {
  /** Scalar loss to minimise. */
  loss: tf.Scalar;
  /** Scalars to log, e.g. { accuracy }. The loop reads them after the step. */
  metrics: Record<string, tf.Scalar>;
  /**
   * Optional [N, D] embeddings of this batch (before the head) used by the loop's
   * collapse alarm (spread of embeddings).
   */
  embeddings?: tf.Tensor2D;
}

export interface PretextTask<Options extends object = object, Heads = Record<string, Head>> {
  /** Registry id used in recipes: `rotation`, `contrastive`, `jigsaw`. */
  readonly id: string;
  /** Paper reference, and the one sentence of it the code implements. */
  readonly paper: string;
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
  /** One step's forward pass: runs inside tf.tidy, must not await. */
  step(ctx: StepContext<Heads>, options: Options): StepOutput;
}
