/**
 * A task's cross-step state (task-state.ts) inside a compiled training step
 * (compiled-step.ts): the momentum target's weights and the buffers live in the
 * session as variables. The target's backbone and heads run in the graph on the
 * images the task names (BatchNorm with batch statistics, its running statistics
 * chained and assigned, as the eager target's forward passes); after the optimizer
 * update the graph assigns the task's buffer updates and moves each trained target
 * weight to m * target + (1 - m) * online (the updated online weight), m fed per
 * step from the host's cosine schedule — the order and arithmetic of
 * TaskState.update. At m = 1 (TaskState skips the update) the EMA is not run.
 */
import type * as tf from '@tensorflow/tfjs';
import type { CompiledBufferUpdate, CompiledStateGraph } from '../../pretext-tasks/types.js';
import type { ResNetLayout } from '../backbones/resnet.js';
import { headGraph, resnetGraph, type TrainingGraphWeights } from '../backbones/resnet-graph.js';
import type { HeadBlock } from '../backbones/types.js';
import {
  DT_FLOAT,
  DT_INT32,
  type GraphBuilder,
  type GraphVariableOps,
  type HostTensor,
  opName,
} from '../engine/graph-runtime.js';
import type { MirroredTaskState } from './task-state.js';

const FLOAT = { type: DT_FLOAT };

/** What the state's graph needs of the compiled step. */
export interface TaskStateGraphInputs {
  layout: ResNetLayout;
  weights: TrainingGraphWeights;
  /** Placeholder of the target backbone's images [M, H, W, C] (with a target). */
  targetImages?: string;
  /** Forward passes of the target backbone over equal parts of `targetImages`. */
  targetPasses: number;
  /** The online heads' block specs by name (the target's copies have the same). */
  headBlocks: Record<string, { name: string; blocks: HeadBlock[] }>;
  taskId: string;
}

export class CompiledTaskState {
  /** Session variables of the target (`target.*`) and of the buffers (`buffers.<name>`). */
  readonly vars = new Map<string, GraphVariableOps>();
  private readonly tfjs = new Map<string, tf.Variable>();
  private readonly momentum: string;
  private readonly oneMinusMomentum: string;
  private ema: string[] = [];
  /** The target backbone's forward passes per step (`targetImages` splits into that many equal parts). */
  targetPasses = 1;
  private bufferAssignments: string[] = [];

  constructor(
    private readonly g: GraphBuilder,
    private readonly state: MirroredTaskState,
  ) {
    for (const { name, variable } of state.target) this.declare(name, variable);
    for (const [name, variable] of Object.entries(state.buffers)) this.declare(`buffers.${name}`, variable);
    this.momentum = g.placeholder('target_momentum', DT_FLOAT, []);
    this.oneMinusMomentum = g.placeholder('target_one_minus_momentum', DT_FLOAT, []);
  }

  private declare(name: string, variable: tf.Variable): void {
    if (variable.dtype !== 'float32' && variable.dtype !== 'int32') {
      throw new Error(`the compiled step cannot mirror ${name}, a ${variable.dtype} variable`);
    }
    this.vars.set(name, this.g.variable(name, variable.shape, variable.dtype === 'int32' ? DT_INT32 : DT_FLOAT));
    this.tfjs.set(name, variable);
  }

  get hasTarget(): boolean {
    return this.state.target.length > 0;
  }

  /** The target's forward passes and head copies, and the buffers' reads, for the task's graph. */
  graph(inputs: TaskStateGraphInputs): CompiledStateGraph {
    const { g } = this;
    const buffers: Record<string, string> = {};
    for (const name of Object.keys(this.state.buffers)) buffers[name] = this.vars.get(`buffers.${name}`)!.read;
    if (!this.hasTarget) return { buffers };
    if (!inputs.targetImages) throw new Error(`task ${inputs.taskId} has a momentum target but no target images`);
    const { layout, weights, targetPasses } = inputs;
    if (!Number.isInteger(targetPasses) || targetPasses < 1) {
      throw new Error(
        `task ${inputs.taskId} asked for ${targetPasses} target forward passes; expected an integer >= 1`,
      );
    }
    this.targetPasses = targetPasses;
    const forward = (images: string) => resnetGraph(g, layout, images, weights.scoped('target.backbone.'), true).output;
    let targetFeatures: string;
    if (targetPasses === 1) targetFeatures = forward(inputs.targetImages);
    else {
      const split = g.op('Split', [g.constInt([0], [], 'split_axis'), inputs.targetImages], {
        T: FLOAT,
        num_split: { int: targetPasses },
      });
      const outputs = Array.from({ length: targetPasses }, (_, i) => forward(g.output(split, i)));
      targetFeatures = g.op('ConcatV2', [outputs, g.constInt([0], [], 'concat_axis')], {
        T: FLOAT,
        N: { int: targetPasses },
        Tidx: { type: DT_INT32 },
      });
    }
    const copied = new Set(this.state.target.map((t) => t.name.split('.').slice(0, 3).join('.')));
    const targetHead = (name: string, x: string) => {
      const module = inputs.headBlocks[name];
      if (!module || !copied.has(`target.heads.${name}`)) {
        throw new Error(`task ${inputs.taskId} asked for the target's head "${name}", which its target does not copy`);
      }
      return headGraph(g, module.blocks, `head.${module.name}`, x, weights.scoped(`target.heads.${name}.`), true);
    };
    return { targetFeatures, targetHead, buffers };
  }

  /**
   * The assignments that follow the optimizer update: the task's buffer updates, and
   * the EMA of each trained target weight towards its online weight read after
   * `updates[online]` (the online weight's update operation, when the loss reaches it).
   */
  buildUpdates(
    bufferUpdates: Record<string, CompiledBufferUpdate>,
    online: (name: string) => GraphVariableOps,
    updates: Map<string, string>,
    taskId: string,
  ): void {
    const { g } = this;
    for (const [name, value] of Object.entries(bufferUpdates)) {
      const ops = this.vars.get(`buffers.${name}`);
      if (!ops) {
        throw new Error(
          `Task "${taskId}" returned an update for buffer "${name}", which it did not declare (declared: ${Object.keys(this.state.buffers).join(', ') || 'none'})`,
        );
      }
      // After the weights' updates (as the eager loop assigns buffers), hence after every read of the buffer.
      const control = [...updates.values()];
      const dtype = { type: ops.dtype };
      const assignment =
        typeof value === 'string'
          ? g.op('AssignVariableOp', [ops.handle, value], { dtype }, { control })
          : g.op(
              'ResourceScatterUpdate',
              [ops.handle, value.rows, value.values],
              { dtype, Tindices: { type: DT_INT32 } },
              { control },
            );
      this.bufferAssignments.push(opName(assignment));
    }
    for (const { name, online: onlineName } of this.state.target) {
      if (!onlineName) continue;
      const target = this.vars.get(name)!;
      const source = online(onlineName);
      const update = updates.get(onlineName);
      const updated = g.op(
        'ReadVariableOp',
        [source.handle],
        { dtype: FLOAT },
        { name: `ema/${onlineName}/online`, control: update ? [update] : [] },
      );
      const value = g.op(
        'AddV2',
        [
          g.op('Mul', [target.read, this.momentum], { T: FLOAT }),
          g.op('Mul', [updated, this.oneMinusMomentum], { T: FLOAT }),
        ],
        { T: FLOAT },
      );
      this.ema.push(
        opName(g.op('AssignVariableOp', [target.handle, value], { dtype: FLOAT }, { name: `ema/${name}` })),
      );
    }
  }

  /** Run targets and feeds of a step with target momentum m (the EMA is left out at m = 1, as TaskState.update). */
  step(momentum: number | undefined): { feeds: Record<string, HostTensor>; targets: string[] } {
    if (this.ema.length === 0 || momentum === 1) return { feeds: {}, targets: this.bufferAssignments };
    if (momentum === undefined || !(momentum >= 0 && momentum <= 1)) {
      throw new Error(`a compiled step with a momentum target needs the step's momentum in [0, 1], got ${momentum}`);
    }
    return {
      feeds: {
        [this.momentum]: { dtype: DT_FLOAT, shape: [], data: Float32Array.of(momentum) },
        [this.oneMinusMomentum]: { dtype: DT_FLOAT, shape: [], data: Float32Array.of(1 - momentum) },
      },
      targets: [...this.bufferAssignments, ...this.ema],
    };
  }

  /** Pairs of session variable and tfjs variable, for push and pull. */
  mirrored(): Array<[GraphVariableOps, tf.Variable]> {
    return [...this.vars].map(([name, ops]) => [ops, this.tfjs.get(name)!]);
  }
}
