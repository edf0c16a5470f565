/**
 * What a pretraining run's pieces share: the events it reports (TrainEvent), the
 * model it owns (PretrainModel) and the run itself (PretrainRun: what setup fixed
 * and what moves as it trains). loop.ts builds them (pretrain-setup.ts) and hands
 * them to the step, checkpoint, epoch and end-of-run modules.
 */
import type { PretextTask } from '../../pretext-tasks/types.js';
import type { Backbone, Head } from '../backbones/types.js';
import type { ImageSource, InputSpec, LoaderOptions } from '../data/types.js';
import type { ManifestExtras } from '../export/manifest.js';
import type { PretrainRecipe } from '../recipes/pretrain-schema.js';
import type { Progress } from '../util/progress.js';
import type { Rng } from '../util/rng.js';
import type { NamedTensorVariable } from './checkpoint.js';
import type { CompiledTrainingStep } from './compiled-step.js';
import type { TrainComponents } from './components.js';
import type { MetricsLog, MetricsRow } from './metrics.js';
import type { KnnSplit } from './monitor.js';
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

/** The kNN monitor's labelled images and their seeded split into a memory bank and queries. */
export interface Validation {
  source: ImageSource;
  split: KnnSplit;
}

/** Where a run is: the epoch, the step within it, and the steps done since the run began. */
export interface RunPosition {
  epoch: number;
  step: number;
  globalStep: number;
}

/** One pretraining run, as loop.ts and its pieces read and advance it. */
export interface PretrainRun {
  readonly recipe: PretrainRecipe;
  // biome-ignore lint/suspicious/noExplicitAny: tasks have their own option types
  readonly task: PretextTask<any, any>;
  readonly taskOptions: object;
  readonly input: InputSpec;
  readonly parts: TrainComponents;
  readonly runDir: string;
  /** The run's seeded generator; each use derives its own named stream. */
  readonly root: Rng;
  readonly source: ImageSource;
  readonly stepsPerEpoch: number;
  /** The loader options of `epoch`, starting at batch `startBatch` (a resumed epoch). */
  readonly loaderOptions: (epoch: number, startBatch: number) => LoaderOptions;
  readonly model: PretrainModel;
  readonly validation: Validation | undefined;
  /** What a backbone export (in a checkpoint, or the finished run's) records about the run. */
  readonly exportMetadata: ManifestExtras;
  readonly progress: Progress;
  readonly emit: (event: TrainEvent) => void;
  /** The compiled step when the run's path is compiled, built once the weights are in place. */
  compiledStep: CompiledTrainingStep | undefined;
  position: RunPosition;
  metrics: MetricsLog;
  /** The first step's loss, the divergence check's reference. */
  referenceLoss: number | null;
  /** The newest checkpoint this run wrote or resumed from. */
  lastGood: string | undefined;
  /** Loss of each step run in this call, in order. */
  readonly losses: number[];
  /** Steps run in this call (the maxSteps budget). */
  stepsThisCall: number;
}
