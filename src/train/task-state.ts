/**
 * State a pretext task keeps across steps, owned by the training loop: a
 * momentum (EMA) target network and named buffers (queues, memory banks,
 * centres). The task declares it (`PretextTask.state()`), reads it through the
 * step context, and returns new buffer values from its step; this module
 * creates the variables, applies the updates after the optimizer step, names
 * them for checkpoints (so a resumed run continues bit-identically) and
 * disposes them.
 */
import * as tf from '@tensorflow/tfjs';
import type {
  BufferSpec,
  PretextTask,
  StepContext,
  TaskStateSpec,
  TrainingProgress,
} from '../../pretext-tasks/types.js';
import type { Backbone, Head } from '../backbones/types.js';
import { UsageError } from '../util/errors.js';
import type { Rng } from '../util/rng.js';
import type { NamedTensorVariable } from './checkpoint.js';
import { moveAverage } from './weight-ema.js';

/**
 * The momentum of the target at step k of K (0-based k): BYOL's schedule
 * m = end - (end - start) (cos(pi k / K) + 1) / 2, from `start` at the first
 * step to `end` at the last.
 */
export function momentumAt(start: number, end: number, globalStep: number, totalSteps: number): number {
  const progress = totalSteps <= 1 ? 1 : Math.min(1, Math.max(0, globalStep / (totalSteps - 1)));
  return end - ((end - start) * (Math.cos(Math.PI * progress) + 1)) / 2;
}

export interface TaskStateInputs {
  // biome-ignore lint/suspicious/noExplicitAny: tasks have their own option and head types
  task: PretextTask<any, any>;
  taskOptions: object;
  backbone: Backbone;
  heads: unknown;
  /** A fresh backbone of the same architecture (becomes the target; its weights are overwritten). */
  createBackbone(): Backbone;
  /** Draws initial buffer values (and the target heads' throw-away initial weights). */
  rng: Rng;
}

interface EmaPair {
  online: tf.Variable;
  target: tf.Variable;
}

/**
 * A task's state as a compiled step mirrors it (compiled-task-state.ts): the target's
 * variables by checkpoint name (`target.backbone.conv1.weight`), each trained one with the
 * name of the online variable it follows (`backbone.conv1.weight`), and the buffers.
 */
export interface MirroredTaskState {
  target: Array<{ name: string; variable: tf.Variable; online?: string }>;
  buffers: Record<string, tf.Variable>;
}

/** A task's cross-step state; `TaskState.none` for tasks that declare nothing. */
export class TaskState {
  private readonly pairs: EmaPair[] = [];
  private readonly saved: NamedTensorVariable[] = [];
  private readonly owned: Array<{ dispose(): void }> = [];
  private readonly mirrored: MirroredTaskState['target'] = [];
  private disposed = false;

  private constructor(
    readonly spec: TaskStateSpec,
    readonly taskId: string,
    readonly target: { backbone: Backbone; heads: Record<string, Head> } | undefined,
    readonly buffers: Record<string, tf.Variable>,
  ) {}

  /** Creates the state `inputs.task.state()` declares (nothing when it declares none). */
  static create(inputs: TaskStateInputs): TaskState {
    const { task, taskOptions, backbone, heads, rng } = inputs;
    const spec: TaskStateSpec = task.state?.(taskOptions, backbone.featureDim) ?? {};
    const onlineHeads: Record<string, Head> = task.headModules(heads);

    let target: { backbone: Backbone; heads: Record<string, Head> } | undefined;
    const pairs: Array<[string, Backbone | Head, Backbone | Head]> = [];
    const owned: Array<{ dispose(): void }> = [];
    if (spec.target) {
      const { momentumStart, momentumEnd } = spec.target;
      if (!(momentumStart >= 0 && momentumStart <= momentumEnd && momentumEnd <= 1)) {
        throw new UsageError(
          `Task "${task.id}" declares a target momentum from ${momentumStart} to ${momentumEnd}; expected 0 <= start <= end <= 1`,
        );
      }
      for (const key of spec.target.heads) {
        if (!onlineHeads[key]) {
          throw new UsageError(
            `Task "${task.id}" declares a target copy of head "${key}" but its heads are: ${Object.keys(onlineHeads).join(', ')}`,
          );
        }
      }
      const targetBackbone = inputs.createBackbone();
      owned.push(targetBackbone);
      const copies: Record<string, Head> = task.headModules(
        task.createHeads(taskOptions, backbone.featureDim, rng.derive('target-heads')),
      );
      const targetHeads: Record<string, Head> = {};
      for (const [key, head] of Object.entries(copies)) {
        if (spec.target.heads.includes(key)) {
          targetHeads[key] = head;
          owned.push(head);
        } else head.dispose();
      }
      target = { backbone: targetBackbone, heads: targetHeads };
      pairs.push(['target.backbone', backbone, targetBackbone]);
      for (const key of spec.target.heads) pairs.push([`target.heads.${key}`, onlineHeads[key], targetHeads[key]]);
    }

    const buffers: Record<string, tf.Variable> = {};
    for (const [name, buffer] of Object.entries(spec.buffers ?? {})) {
      const variable = createBuffer(buffer, rng.derive('buffer', name), `${task.id}.${name}`);
      buffers[name] = variable;
      owned.push(variable);
    }

    const state = new TaskState(spec, task.id, target, buffers);
    state.owned.push(...owned);
    for (const [prefix, online, copy] of pairs) {
      const targetVariables = new Map(copy.variables().map((v) => [v.name, v]));
      for (const v of online.variables()) {
        const t = targetVariables.get(v.name);
        if (!t || t.variable.shape.join(',') !== v.variable.shape.join(',')) {
          throw new Error(`${prefix}: the target copy has no variable ${v.name} of shape [${v.variable.shape}]`);
        }
        tf.tidy(() => t.variable.assign(v.variable));
        const name = `${prefix}.${v.name}`;
        state.saved.push({ name, variable: t.variable });
        state.mirrored.push({
          name,
          variable: t.variable,
          online: v.trainable ? name.slice('target.'.length) : undefined,
        });
        if (v.trainable) state.pairs.push({ online: v.variable, target: t.variable });
      }
    }
    for (const [name, variable] of Object.entries(buffers)) state.saved.push({ name: `buffers.${name}`, variable });
    return state;
  }

  /** What the step context gets: the target, the buffers' current values, the position. */
  context(progress: TrainingProgress): Pick<StepContext<unknown>, 'target' | 'buffers' | 'progress'> {
    return { target: this.target, buffers: { ...this.buffers }, progress };
  }

  /** The variables a checkpoint holds for this state (`target.*`, `buffers.*`). */
  variables(): NamedTensorVariable[] {
    return this.saved.slice();
  }

  /** The target's variables and the buffers, for a compiled step to mirror (undefined when the task keeps no state). */
  compiledState(): MirroredTaskState | undefined {
    if (!this.target && Object.keys(this.buffers).length === 0) return undefined;
    return { target: this.mirrored.slice(), buffers: { ...this.buffers } };
  }

  /** The target's momentum for a step (undefined without a target). */
  momentum(progress: TrainingProgress): number | undefined {
    const target = this.spec.target;
    if (!target) return undefined;
    return momentumAt(target.momentumStart, target.momentumEnd, progress.globalStep, progress.totalSteps);
  }

  /**
   * After the optimizer step: assign the step's buffer updates, then move the
   * target towards the online weights with this step's momentum.
   */
  update(bufferUpdates: Record<string, tf.Tensor> | undefined, progress: TrainingProgress): void {
    for (const [name, value] of Object.entries(bufferUpdates ?? {})) {
      const buffer = this.buffers[name];
      if (!buffer) {
        throw new Error(
          `Task "${this.taskId}" returned an update for buffer "${name}", which it did not declare (declared: ${Object.keys(this.buffers).join(', ') || 'none'})`,
        );
      }
      if (value.shape.join(',') !== buffer.shape.join(',') || value.dtype !== buffer.dtype) {
        throw new Error(
          `Task "${this.taskId}" updated buffer "${name}" with a ${value.dtype} [${value.shape}] tensor; it is ${buffer.dtype} [${buffer.shape}]`,
        );
      }
      buffer.assign(value);
    }
    const m = this.momentum(progress);
    if (m === undefined || m === 1) return;
    moveAverage(
      this.pairs.map((p) => ({ target: p.target, source: p.online })),
      m,
    );
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const item of this.owned) item.dispose();
  }
}

function createBuffer(spec: BufferSpec, rng: Rng, name: string): tf.Variable {
  const dtype = spec.dtype ?? 'float32';
  if (!Array.isArray(spec.shape) || !spec.shape.every((d) => Number.isInteger(d) && d >= 1)) {
    throw new UsageError(
      `Buffer ${name} needs a shape of positive integers but received ${JSON.stringify(spec.shape)}`,
    );
  }
  if (spec.init === 'zeros') return tf.tidy(() => tf.variable(tf.zeros(spec.shape, dtype), false));
  if (spec.init === 'unit-rows') {
    if (spec.shape.length !== 2 || dtype !== 'float32') {
      throw new UsageError(`Buffer ${name}: "unit-rows" needs a float32 [N, D] shape, got ${dtype} [${spec.shape}]`);
    }
    const [rows, cols] = spec.shape;
    const values = new Float32Array(rows * cols);
    for (let r = 0; r < rows; r++) {
      let norm = 0;
      const row = new Float64Array(cols);
      for (let c = 0; c < cols; c++) {
        row[c] = rng.normal();
        norm += row[c] * row[c];
      }
      norm = Math.max(Math.sqrt(norm), 1e-12);
      for (let c = 0; c < cols; c++) values[r * cols + c] = row[c] / norm;
    }
    return tf.tidy(() => tf.variable(tf.tensor2d(values, [rows, cols]), false));
  }
  throw new UsageError(`Buffer ${name} has an unknown init ${JSON.stringify(spec.init)}; use "zeros" or "unit-rows"`);
}
