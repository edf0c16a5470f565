/**
 * A pretraining run's step: which one runs — one compiled graph where the run
 * allows it (training-path.ts), else the eager step (step.ts) — and why;
 * building the compiled one once the weights are in place; computing a step's
 * loss and gradients; and applying its update (the backbone's parameter group,
 * the optimizer, the task's state). The divergence check between the two is the loop's.
 */
import * as tf from '@tensorflow/tfjs';
import type { TrainingProgress } from '../../pretext-tasks/types.js';
import type { Batch } from '../data/types.js';
import type { PretrainRecipe } from '../recipes/pretrain-schema.js';
import type { Rng } from '../util/rng.js';
import {
  type CompiledOptimizerName,
  CompiledTrainingStep,
  compiledStepProblem,
  type Precision,
} from './compiled-step.js';
import type { PretrainModel, PretrainRun } from './pretrain-run.js';
import { type ComputedStep, computeStep } from './step.js';
import { chooseTrainingPath, type TrainingPath } from './training-path.js';

/**
 * The optimizers pretraining runs compiled: every one (runCompiledStep feeds Adam's
 * per-parameter update counts; the applied update is counted as the eager optimizer counts it).
 */
const PRETRAIN_OPTIMIZERS: readonly CompiledOptimizerName[] = ['sgd', 'lars', 'adam', 'adamw'];

/**
 * The run's path (train.compile, train.precision). A task's state (momentum target,
 * queue) compiles with the step when its hook runs it (compiledStepProblem).
 */
export function choosePretrainPath(
  recipe: PretrainRecipe,
  task: PretrainRun['task'],
  taskOptions: object,
  model: PretrainModel,
): TrainingPath {
  const train = recipe.train;
  const loopProblem = model.probe
    ? "the online linear probe (recipe.monitor.onlineProbe) needs each step's embeddings"
    : recipe.init.weights !== null && recipe.init.warmEpochs > 0
      ? 'the backbone has its own learning rate while the heads warm up (recipe.init.warmEpochs)'
      : undefined;
  return chooseTrainingPath(
    train.compile,
    train.precision,
    train.compile === 'off'
      ? undefined
      : (loopProblem ??
          compiledStepProblem(
            { task, taskOptions, backbone: model.backbone, heads: model.headModules, optimizer: train.optimizer },
            PRETRAIN_OPTIMIZERS,
          )),
  );
}

/**
 * The compiled step, built once: the weights (just initialised, loaded or resumed)
 * are copied into its session, and the optimizer's slots (SGD/LARS momentum,
 * Adam's moments) are mirrored with their parameters.
 */
export function buildCompiledStep(run: PretrainRun, precision: Precision): CompiledTrainingStep {
  const { backbone, headModules, optimizer, taskState } = run.model;
  const train = run.recipe.train;
  const slots = new Map(optimizer.stateVariables().map((v) => [v.name, v.variable]));
  const mirrored = [
    ...backbone.variables().map((v) => ({ ...v, name: `backbone.${v.name}` })),
    ...Object.entries(headModules).flatMap(([key, head]) =>
      head.variables().map((v) => ({ ...v, name: `heads.${key}.${v.name}` })),
    ),
  ].map((v) => {
    const m = slots.get(`optimizer.m.${v.name}`);
    const second = slots.get(`optimizer.v.${v.name}`);
    return {
      ...v,
      momentum: slots.get(`optimizer.momentum.${v.name}`),
      adam: m && second ? { m, v: second } : undefined,
    };
  });
  return new CompiledTrainingStep({
    task: run.task,
    taskOptions: run.taskOptions,
    backbone,
    heads: headModules,
    variables: mirrored,
    optimizer: train.optimizer,
    gradClipNorm: train.gradClipNorm,
    imageShape: [run.input.size, run.input.size, run.input.channels],
    precision,
    intraOpThreads: Number(process.env.TF_NUM_INTRAOP_THREADS) || 0,
    interOpThreads: Number(process.env.TF_NUM_INTEROP_THREADS) || 0,
    state: taskState.compiledState(),
    optimizers: PRETRAIN_OPTIMIZERS,
  });
}

/** What one step is asked to do. */
export interface StepRequest {
  batch: Batch;
  rng: Rng;
  lr: number;
  measureSpread: boolean;
  /** The step's place in the run, for the task's state (momentum schedule, context). */
  progress: TrainingProgress;
}

/** One step's loss, gradient norm, metrics and spread, computed and not yet applied. */
export async function computeRunStep(run: PretrainRun, request: StepRequest): Promise<ComputedStep> {
  const { batch, rng, lr, measureSpread, progress } = request;
  const { backbone, heads, params, taskState, probe, optimizer } = run.model;
  return run.compiledStep
    ? runCompiledStep(
        run.compiledStep,
        batch,
        rng,
        lr,
        measureSpread,
        // Adam's bias correction: each parameter's own update count with this step.
        (name) => optimizer.updateCount(name) + 1,
        taskState.momentum(progress),
        progress,
      )
    : await computeStep({
        task: run.task,
        taskOptions: run.taskOptions,
        backbone,
        heads,
        params,
        batch,
        rng,
        gradClipNorm: run.recipe.train.gradClipNorm,
        measureSpread,
        context: taskState.context(progress),
        keepEmbeddings: probe !== undefined,
      });
}

/**
 * Applies a computed step at rate `lr`: the backbone's parameter group for
 * `epoch`, then the update (eager: the optimizer and the task's state; compiled:
 * the session applied both, the host counts them).
 */
export function applyRunStep(
  run: PretrainRun,
  computed: ComputedStep,
  lr: number,
  epoch: number,
  progress: TrainingProgress,
): void {
  const { backbone, backboneParams, optimizer, taskState } = run.model;
  const { init } = run.recipe;
  // Continued pretraining: the backbone is a parameter group at a lower rate while the random heads settle.
  const warm = init.weights !== null && epoch < init.warmEpochs;
  for (const p of backboneParams) p.lrScale = warm ? init.backboneLrMultiplier : 1;
  const compiledStep = run.compiledStep;
  if (compiledStep) {
    // The session applied the update; count it as the eager optimizer does:
    // one step, and one update for each parameter the loss reached (Adam's own t).
    optimizer.countUpdate(compiledStep.updatedNames);
    // As the eager backbone counts its training calls: one per forward pass (two-view methods: per view).
    const tracked = backbone as { numBatchesTracked?: number };
    if (tracked.numBatchesTracked !== undefined) tracked.numBatchesTracked += compiledStep.backbonePasses;
  } else {
    tf.tidy(() => optimizer.apply(computed.grads, lr));
  }
  // The compiled step updated the task's state (buffers, then the EMA) in its session.
  if (!compiledStep) taskState.update(computed.bufferUpdates, progress);
}

/** A compiled step in the shape of step.ts's ComputedStep (no gradients leave the session). */
function runCompiledStep(
  step: CompiledTrainingStep,
  batch: Batch,
  rng: Rng,
  lr: number,
  measureSpread: boolean,
  updateCount: (name: string) => number,
  targetMomentum: number | undefined,
  progress: TrainingProgress,
) {
  const views = batch.views.map((v) => tf.tensor(v.data, v.shape, 'float32'));
  try {
    const result = step.run(views, rng, lr, measureSpread, updateCount, targetMomentum, progress);
    return {
      ...result,
      grads: {} as Record<string, tf.Tensor>,
      bufferUpdates: {} as Record<string, tf.Tensor>,
      embeddings: undefined as tf.Tensor2D | undefined,
      dispose: () => {},
    };
  } finally {
    tf.dispose(views);
  }
}
