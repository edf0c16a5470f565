/**
 * The training step as one compiled TensorFlow graph: the backbone's forward
 * pass (resnet-graph.ts, from the same resnetLayout as the eager ResNet; one pass,
 * or one per view when the task's eager step calls the backbone per view, BatchNorm
 * running statistics chained from pass to pass), the task's loss (its `compiled`
 * hook: rotation, SimCLR, Barlow Twins, VICReg, SimSiam, BYOL, MoCo, DINO), the gradients (TensorFlow's gradient
 * registry), global-norm clipping and the SGD update, built once and run per
 * step in a session with the batch fed in. A task's state (BYOL's, MoCo's and DINO's momentum
 * target, MoCo's queue, DINO's centre) lives in the session too (compiled-task-state.ts); DINO's
 * local views of another size are a second image input with a backbone pass of their own. The grappler remapper fuses ops; with
 * `precision: 'bfloat16'` oneDNN's auto mixed precision runs convolutions and
 * matrix products in bfloat16 while weights, BatchNorm statistics and the loss
 * stay float32.
 *
 * The weights live in the session while training. `push()` copies the tfjs
 * variables (weights, BatchNorm statistics, momentum buffers) in; `pull()` copies
 * them back out, for checkpoints, exports and evaluation. Steps touch no tfjs
 * tensors beyond the task's host-side input preparation (inside tf.tidy).
 *
 * The clipping and optimizer update (SGD, LARS, Adam, AdamW as optimizers.ts's) are
 * graph-optimizer.ts's.
 */
import * as tf from '@tensorflow/tfjs';
import type { CompiledTaskStep, TaskStateSpec, TrainingProgress } from '../../pretext-tasks/types.js';
import type { ResNetLayout } from '../backbones/resnet.js';
import { headGraph, headGraphProblem, resnetGraph, TrainingGraphWeights } from '../backbones/resnet-graph.js';
import type { Backbone, Head, HeadBlock, NamedVariable } from '../backbones/types.js';
import type { Precision } from '../engine/graph-path.js';
import {
  DT_FLOAT,
  DT_INT32,
  GraphBuilder,
  GraphSession,
  type GraphVariableOps,
  graphRuntimeStatus,
  type HostTensor,
} from '../engine/graph-runtime.js';
import type { OptimizerConfig } from '../recipes/optimizer-schema.js';
import type { Rng } from '../util/rng.js';
import { embeddingSpread } from './collapse.js';
import { CompiledTaskState } from './compiled-task-state.js';
import { type AdamPowerFeeds, optimizerGraph } from './graph-optimizer.js';
import type { MirroredTaskState } from './task-state.js';

const FLOAT = { type: DT_FLOAT };

export type { Precision };

/** A variable mirrored in the session: its tfjs variable and how the optimizer treats it. */
export interface MirroredVariable {
  /** Unique name (`backbone.conv1.weight`, `heads.classifier.head.classifier.0.weight`). */
  name: string;
  variable: tf.Variable;
  trainable: boolean;
  kind: NamedVariable['kind'];
  /** Learning-rate multiplier (parameter groups), fixed when the graph is built. */
  lrScale?: number;
  /** The optimizer's momentum buffer of this parameter, when it has one. */
  momentum?: tf.Variable;
  /** Adam's first and second moments of this parameter (adam, adamw). */
  adam?: { m: tf.Variable; v: tf.Variable };
}

/** The optimizers a compiled step can run; callers say which of them their loop supports. */
export type CompiledOptimizerName = 'sgd' | 'lars' | 'adam' | 'adamw';

/**
 * What the compiled step needs of a task: its id (for messages) and its
 * `compiled` hook. A pretext task is one; finetuning's supervised loss is another
 * (src/finetune/compiled-finetune.ts).
 */
export interface CompiledTask {
  id: string;
  // biome-ignore lint/suspicious/noExplicitAny: tasks have their own option types
  compiled?: CompiledTaskStep<any>;
  /** The state the task keeps across steps (a pretext task's `state()`); compiled only for a `stateful` hook. */
  // biome-ignore lint/suspicious/noExplicitAny: tasks have their own option types
  state?(options: any, featureDim: number): TaskStateSpec;
}

export interface CompiledStepSpec {
  task: CompiledTask;
  taskOptions: object;
  backbone: Backbone;
  /** The task's head modules by name (task.headModules(heads)). */
  heads: Record<string, Head>;
  /** Every variable of the backbone and heads, with the trained ones' momentum buffers. */
  variables: MirroredVariable[];
  optimizer: OptimizerConfig;
  gradClipNorm: number;
  /** Image size [H, W, C] of the backbone's input. */
  imageShape: [number, number, number];
  precision: Precision;
  intraOpThreads: number;
  interOpThreads: number;
  /**
   * BatchNorm of the backbone with batch statistics, updating its running
   * statistics (the default), or with its running statistics (a frozen backbone under a trained head).
   */
  backboneTraining?: boolean;
  /**
   * The optimizers the caller's loop can run compiled (default sgd and lars): Adam and AdamW
   * need each parameter's update count fed per step (run's `updateCount`).
   */
  optimizers?: readonly CompiledOptimizerName[];
  /** The task's state (TaskState.compiledState()): target weights and buffers, mirrored like the weights. */
  state?: MirroredTaskState;
}

/** What one compiled step returns. */
export interface CompiledStepResult {
  loss: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  metrics: Record<string, number>;
  /** Embedding spread of the pooled features (collapse alarm), NaN when not asked for. */
  spread: number;
  /** Feature size D (0 when the spread was not asked for). */
  embeddingDim: number;
}

interface HeadWithBlocks extends Head {
  name: string;
  blocks: HeadBlock[];
}

function layoutOf(backbone: Backbone): ResNetLayout | undefined {
  return (backbone as Partial<{ layout: ResNetLayout }>).layout;
}

/**
 * Why this run cannot use a compiled step, or undefined when it can: the graph
 * addon, the backbone (a ResNet), the task's `compiled` hook, its heads and the optimizer.
 */
export function compiledStepProblem(
  spec: Pick<CompiledStepSpec, 'task' | 'taskOptions' | 'backbone' | 'heads' | 'optimizer'>,
  optimizers: readonly CompiledOptimizerName[] = ['sgd', 'lars'],
): string | undefined {
  const status = graphRuntimeStatus();
  if (!status.available) return status.reason;
  if (!layoutOf(spec.backbone)) return 'the backbone is not a ResNet';
  const compiled = spec.task.compiled as CompiledTaskStep<object> | undefined;
  if (!compiled) return `task ${spec.task.id} has no compiled step`;
  const taskProblem = compiled.problem(spec.taskOptions);
  if (taskProblem) return `task ${spec.task.id}: ${taskProblem}`;
  const state = spec.task.state?.(spec.taskOptions, spec.backbone.featureDim);
  if ((state?.target || Object.keys(state?.buffers ?? {}).length > 0) && !compiled.stateful) {
    return `task ${spec.task.id} keeps state across steps (momentum target or buffers) that its compiled step does not run`;
  }
  for (const [name, head] of Object.entries(spec.heads)) {
    const blocks = (head as Partial<HeadWithBlocks>).blocks;
    if (!blocks) return `head ${name} is not built from block specs`;
    const problem = headGraphProblem(blocks);
    if (problem) return `head ${name}: ${problem}`;
  }
  if (!(optimizers as readonly string[]).includes(spec.optimizer.name)) {
    const listed = optimizers.length === 1 ? `${optimizers[0]} is` : `${optimizers.join(', ')} are`;
    return `optimizer ${spec.optimizer.name} is not compiled yet (${listed})`;
  }
  return undefined;
}

function hostTensor(values: Float32Array, shape: number[]): HostTensor {
  return { dtype: DT_FLOAT, shape, data: values };
}

export class CompiledTrainingStep {
  private readonly graph: GraphBuilder;
  private readonly session: GraphSession;
  private readonly vars = new Map<string, GraphVariableOps>();
  private readonly slots = new Map<string, GraphVariableOps>();
  private readonly adamSlots = new Map<string, { m: GraphVariableOps; v: GraphVariableOps }>();
  /** Per trained parameter (adam, adamw): placeholders of beta1^t and beta2^t. */
  private readonly betaPowers: Map<string, AdamPowerFeeds>;
  private readonly images: string;
  /** Placeholder of the task's second images (another size: DINO's local views), when it has them. */
  private readonly secondImages: string | undefined;
  /** Placeholders of the task's per-step scalars, by name. */
  private readonly scalars: Record<string, string> = {};
  /** Placeholder of the momentum target's images, when the task has a target. */
  private readonly targetImages: string | undefined;
  private readonly state: CompiledTaskState | undefined;
  /** Placeholder of the task's targets, when it has any. */
  private readonly targets: string | undefined;
  private readonly lr: string;
  private readonly fetches: string[];
  /** The rows whose spread the collapse alarm measures (the eager step's embeddings). */
  private readonly embeddings: string;
  private readonly metricNames: string[];
  private readonly targetsRun: string[];
  private readonly compiled: CompiledTaskStep<object>;
  /** Forward passes of the online backbone over equal parts of the images (the task's `forwardPasses`). */
  readonly forwardPasses: number;
  /** Online backbone passes per step, the second images' included: BatchNorm's num_batches_tracked counts each. */
  readonly backbonePasses: number;
  /** The trained parameters each step updates (those the loss reaches; the eager step's gradients). */
  readonly updatedNames: readonly string[];
  private disposed = false;

  constructor(private readonly spec: CompiledStepSpec) {
    const problem = compiledStepProblem(spec, spec.optimizers);
    if (problem) throw new Error(`cannot compile the training step: ${problem}`);
    this.compiled = spec.task.compiled as CompiledTaskStep<object>;
    this.forwardPasses = this.compiled.forwardPasses?.(spec.taskOptions) ?? 1;
    if (!Number.isInteger(this.forwardPasses) || this.forwardPasses < 1) {
      throw new Error(`task ${spec.task.id} asked for ${this.forwardPasses} forward passes; expected an integer >= 1`);
    }
    const layout = layoutOf(spec.backbone)!;
    const g = new GraphBuilder();
    this.graph = g;
    try {
      for (const v of spec.variables) {
        this.vars.set(v.name, g.variable(v.name, v.variable.shape));
        if (v.momentum) this.slots.set(v.name, g.variable(`optimizer.momentum.${v.name}`, v.variable.shape));
        if (v.adam) {
          this.adamSlots.set(v.name, {
            m: g.variable(`optimizer.m.${v.name}`, v.variable.shape),
            v: g.variable(`optimizer.v.${v.name}`, v.variable.shape),
          });
        }
      }
      const [height, width, channels] = spec.imageShape;
      this.images = g.placeholder('images', DT_FLOAT, [-1, height, width, channels]);
      const second = this.compiled.secondImageSize?.(spec.taskOptions, [height, width]);
      this.secondImages = second ? g.placeholder('second_images', DT_FLOAT, [-1, ...second, channels]) : undefined;
      for (const name of this.compiled.scalars?.(spec.taskOptions) ?? []) {
        this.scalars[name] = g.placeholder(`scalar_${name}`, DT_FLOAT, []);
      }
      const targetShape = this.compiled.targetShape?.(spec.taskOptions);
      this.targets = targetShape ? g.placeholder('targets', DT_FLOAT, [-1, ...targetShape]) : undefined;
      this.lr = g.placeholder('learning_rate', DT_FLOAT, []);
      if (spec.state && !this.compiled.stateful) throw new Error(`task ${spec.task.id} has no stateful compiled step`);
      this.state = spec.state ? new CompiledTaskState(g, spec.state) : undefined;
      this.targetImages = this.state?.hasTarget
        ? g.placeholder('target_images', DT_FLOAT, [-1, height, width, channels])
        : undefined;
      // BatchNorm running statistics chain from pass to pass and are assigned once, at the end.
      const weights = new TrainingGraphWeights(g, (name) => this.variable(name));
      const features = this.backboneFeatures(g, layout, weights);
      // The second images' pass follows the first images' passes (BatchNorm statistics chained on).
      const secondFeatures = this.secondImages
        ? resnetGraph(g, layout, this.secondImages, weights.scoped('backbone.'), spec.backboneTraining ?? true).output
        : undefined;
      const heads = spec.heads as Record<string, HeadWithBlocks>;
      // BatchNorm head blocks in training mode, as the eager step's heads.
      const head = (name: string, x: string) => {
        const module = heads[name];
        if (!module) throw new Error(`task ${spec.task.id} asked for head "${name}", which it did not build`);
        return headGraph(g, module.blocks, `head.${module.name}`, x, weights.scoped(`heads.${name}.`), true);
      };
      const stateGraph = this.state?.graph({
        layout,
        weights,
        targetImages: this.targetImages,
        targetPasses: this.compiled.stateful?.targetForwardPasses?.(spec.taskOptions) ?? 1,
        headBlocks: heads,
        taskId: spec.task.id,
      });
      const { loss, metrics, embeddings, bufferUpdates } = this.compiled.graph(
        g,
        features,
        this.targets,
        head,
        spec.taskOptions,
        stateGraph,
        { secondFeatures, scalars: this.scalars },
      );
      this.embeddings = embeddings ?? features;
      this.metricNames = Object.keys(metrics);

      const trained = spec.variables.filter((v) => v.trainable);
      const grads = g.gradients(
        [loss],
        trained.map((v) => this.variable(v.name).read),
      );
      const reached = trained.flatMap((v, i) => (grads[i] ? [{ variable: v, grad: grads[i] as string }] : []));
      this.updatedNames = reached.map(({ variable }) => variable.name);
      const { norm, updates, betaPowers } = optimizerGraph(g, reached, {
        optimizer: spec.optimizer,
        gradClipNorm: spec.gradClipNorm,
        learningRate: this.lr,
        variable: (name) => this.variable(name),
        momentum: (name) => this.slots.get(name),
        moments: (name) => this.adamSlots.get(name),
      });
      this.betaPowers = betaPowers;
      this.state?.buildUpdates(bufferUpdates ?? {}, (name) => this.variable(name), updates, spec.task.id);
      this.fetches = [loss, norm, ...this.metricNames.map((m) => metrics[m])];
      this.targetsRun = [...updates.values(), ...weights.assignments()];
      this.session = new GraphSession(g, {
        intraOpThreads: spec.intraOpThreads,
        interOpThreads: spec.interOpThreads,
        bfloat16: spec.precision === 'bfloat16',
      });
    } catch (error) {
      g.dispose();
      throw error;
    }
    this.backbonePasses = this.forwardPasses + (this.secondImages ? 1 : 0);
    this.push();
  }

  /**
   * Pooled features [N, D] of the images placeholder: one forward pass, or the task's
   * `forwardPasses` over equal parts of the batch, their features concatenated in order.
   */
  private backboneFeatures(g: GraphBuilder, layout: ResNetLayout, weights: TrainingGraphWeights): string {
    const passes = this.forwardPasses;
    const training = this.spec.backboneTraining ?? true;
    const forward = (images: string) => resnetGraph(g, layout, images, weights.scoped('backbone.'), training).output;
    if (passes === 1) return forward(this.images);
    const split = g.op('Split', [g.constInt([0], [], 'split_axis'), this.images], {
      T: FLOAT,
      num_split: { int: passes },
    });
    const outputs = Array.from({ length: passes }, (_, i) => forward(g.output(split, i))); // [N / passes, D] each
    return g.op('ConcatV2', [outputs, g.constInt([0], [], 'concat_axis')], {
      T: FLOAT,
      N: { int: passes },
      Tidx: { type: DT_INT32 },
    });
  }

  private variable(name: string): GraphVariableOps {
    const ops = this.vars.get(name) ?? this.state?.vars.get(name);
    if (!ops) throw new Error(`the compiled step has no variable named ${name}`);
    return ops;
  }

  /** Copies the tfjs variables (momentum buffers, the task's state) into the session. */
  push(): void {
    const feeds: Record<string, HostTensor> = {};
    const targets: string[] = [];
    const add = (ops: GraphVariableOps, variable: tf.Variable) => {
      feeds[ops.initValue] = { dtype: ops.dtype, shape: ops.shape, data: variable.dataSync() as Float32Array };
      targets.push(ops.init);
    };
    for (const [ops, variable] of this.state?.mirrored() ?? []) add(ops, variable);
    for (const v of this.spec.variables) {
      add(this.variable(v.name), v.variable);
      const slot = this.slots.get(v.name);
      if (slot && v.momentum) add(slot, v.momentum);
      const moments = this.adamSlots.get(v.name);
      if (moments && v.adam) {
        add(moments.m, v.adam.m);
        add(moments.v, v.adam.v);
      }
    }
    this.session.run(feeds, [], targets);
  }

  /** Copies the session's values back into the tfjs variables (momentum buffers, the task's state). */
  pull(): void {
    const pairs: Array<[GraphVariableOps, tf.Variable]> = [...(this.state?.mirrored() ?? [])];
    for (const v of this.spec.variables) {
      pairs.push([this.variable(v.name), v.variable]);
      const slot = this.slots.get(v.name);
      if (slot && v.momentum) pairs.push([slot, v.momentum]);
      const moments = this.adamSlots.get(v.name);
      if (moments && v.adam) pairs.push([moments.m, v.adam.m], [moments.v, v.adam.v]);
    }
    const values = this.session.run(
      {},
      pairs.map(([ops]) => ops.snapshot),
    );
    tf.tidy(() => {
      pairs.forEach(([, variable], i) => {
        variable.assign(tf.tensor(values[i].data as Float32Array | Int32Array, variable.shape, variable.dtype));
      });
    });
  }

  /**
   * One training step on the task's views: forward, backward, update, in the
   * session. With `measureSpread` the task's embeddings (the pooled features, or
   * the rows its graph names) are fetched too and their spread measured as the eager step does.
   */
  run(
    views: tf.Tensor[],
    rng: Rng,
    lr: number,
    measureSpread = false,
    /** Adam, AdamW: the update count t of a trained parameter with this step (its bias correction). */
    updateCount?: (name: string) => number,
    /** A task with a momentum target: this step's momentum m (TaskState.momentum). */
    targetMomentum?: number,
    /** The step's place in the run, for a task whose inputs follow it (DINO's teacher temperature). */
    progress?: TrainingProgress,
  ): CompiledStepResult {
    if (this.disposed) throw new Error('this compiled step was disposed');
    const powers: Record<string, HostTensor> = {};
    if (this.betaPowers.size > 0) {
      if (!updateCount) throw new Error('an Adam step needs the update count of each parameter');
      const [beta1, beta2] = this.spec.optimizer.betas;
      for (const [name, placeholders] of this.betaPowers) {
        const t = updateCount(name);
        powers[placeholders.beta1] = hostTensor(Float32Array.of(beta1 ** t), []);
        powers[placeholders.beta2] = hostTensor(Float32Array.of(beta2 ** t), []);
        powers[placeholders.epsilon] = hostTensor(
          Float32Array.of(this.spec.optimizer.eps * Math.sqrt(1 - beta2 ** t)),
          [],
        );
      }
    }
    const state = this.state?.step(targetMomentum);
    const { images, targets, targetImages, secondImages, scalars } = tf.tidy(() => {
      const out = this.compiled.inputs({ views, rng, progress }, this.spec.taskOptions);
      return {
        images: out.images,
        targets: out.targets,
        targetImages: out.targetImages,
        secondImages: out.secondImages,
        scalars: out.scalars ?? {},
      };
    });
    let feeds: Record<string, HostTensor>;
    try {
      if (this.targetImages && !targetImages) {
        throw new Error(`task ${this.spec.task.id} gave no target images for its compiled step`);
      }
      if (targetImages && this.state && targetImages.shape[0] % this.state.targetPasses !== 0) {
        throw new Error(
          `task ${this.spec.task.id} gave ${targetImages.shape[0]} target images for ${this.state.targetPasses} equal forward passes`,
        );
      }
      if (this.targets && !targets) throw new Error(`task ${this.spec.task.id} gave no targets for its compiled step`);
      if (this.secondImages && !secondImages) {
        throw new Error(`task ${this.spec.task.id} gave no second images for its compiled step`);
      }
      for (const name of Object.keys(this.scalars)) {
        if (!Number.isFinite(scalars[name])) {
          throw new Error(`task ${this.spec.task.id} gave no value for its compiled step's scalar ${name}`);
        }
      }
      if (images.shape[0] % this.forwardPasses !== 0) {
        throw new Error(
          `task ${this.spec.task.id} gave ${images.shape[0]} images for ${this.forwardPasses} equal forward passes`,
        );
      }
      feeds = {
        [this.images]: hostTensor(images.dataSync() as Float32Array, images.shape),
        ...(this.targets && targets
          ? { [this.targets]: hostTensor(targets.dataSync() as Float32Array, targets.shape) }
          : {}),
        [this.lr]: hostTensor(Float32Array.of(lr), []),
        ...powers,
        ...state?.feeds,
      };
      if (this.secondImages && secondImages) {
        feeds[this.secondImages] = hostTensor(secondImages.dataSync() as Float32Array, secondImages.shape);
      }
      for (const [name, placeholder] of Object.entries(this.scalars)) {
        feeds[placeholder] = hostTensor(Float32Array.of(scalars[name]), []);
      }
      if (this.targetImages && targetImages) {
        feeds[this.targetImages] =
          targetImages === images
            ? feeds[this.images]
            : hostTensor(targetImages.dataSync() as Float32Array, targetImages.shape);
      }
    } finally {
      tf.dispose([
        images,
        ...(targets ? [targets] : []),
        ...(targetImages ? [targetImages] : []),
        ...(secondImages ? [secondImages] : []),
      ]);
    }
    const fetches = measureSpread ? [...this.fetches, this.embeddings] : this.fetches;
    const out = this.session.run(feeds, fetches, state ? [...this.targetsRun, ...state.targets] : this.targetsRun);
    const metrics: Record<string, number> = {};
    this.metricNames.forEach((name, i) => {
      metrics[name] = (out[2 + i].data as Float32Array)[0];
    });
    let spread = Number.NaN;
    let embeddingDim = 0;
    if (measureSpread) {
      const features = out[out.length - 1];
      embeddingDim = features.shape[1];
      spread = tf.tidy(
        () =>
          embeddingSpread(tf.tensor2d(features.data as Float32Array, [features.shape[0], embeddingDim])).dataSync()[0],
      );
    }
    return {
      loss: (out[0].data as Float32Array)[0],
      gradNorm: (out[1].data as Float32Array)[0],
      metrics,
      spread,
      embeddingDim,
    };
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.session.close();
    this.graph.dispose();
  }
}
