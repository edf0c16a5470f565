/**
 * What a pretraining run's pieces share: the events it reports (TrainEvent) and
 * the model it owns (PretrainModel). loop.ts builds both (pretrain-setup.ts)
 * and hands them to the step, checkpoint and epoch modules.
 */
import type { Backbone, Head } from '../backbones/types.js';
import type { NamedTensorVariable } from './checkpoint.js';
import type { MetricsRow } from './metrics.js';
import type { OnlineProbe } from './online-probe.js';
import type { TrainableParam, VariableOptimizer } from './optimizers.js';
import type { TaskState } from './task-state.js';

export type TrainEvent =
  | {
      type: 'start';
      runDir: string;
      epochs: number;
      stepsPerEpoch: number;
      resumedFrom?: string;
      /** Which training step runs and why (training-path.ts): `compiled graph, bfloat16 (...)` or `eager step, float32 (...)`. */
      trainingStep: string;
    }
  | { type: 'step'; row: MetricsRow }
  | { type: 'epoch'; row: MetricsRow }
  | { type: 'checkpoint'; dir: string }
  | { type: 'warning'; message: string }
  | { type: 'end'; runDir: string; status: 'finished' | 'stopped' };

/** The model a run trains and owns: every variable is created before the first step and disposed after the last. */
export interface PretrainModel {
  backbone: Backbone;
  /** The task's heads, as its createHeads returned them. */
  heads: unknown;
  /** The same heads by name (their variables and disposal). */
  headModules: Record<string, Head>;
  /** The trainable variables of backbone and heads, named `backbone.<name>` and `heads.<key>.<name>`. */
  params: TrainableParam[];
  /** The backbone's params: a parameter group at a lower rate while the heads warm up (recipe.init.warmEpochs). */
  backboneParams: TrainableParam[];
  /** Every variable a checkpoint holds, in checkpoint order: weights, task state, online probe, optimizer slots. */
  saved: NamedTensorVariable[];
  /** The task's cross-step state (momentum target, queues). */
  taskState: TaskState;
  probe: OnlineProbe | undefined;
  optimizer: VariableOptimizer;
}
