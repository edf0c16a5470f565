/**
 * The pretraining loop. It knows nothing task-specific: the task (a PretextTask
 * plugin) says which views to load, builds its heads and computes each batch's
 * loss; the loop owns the variables, the optimizer, the schedule, checkpoints,
 * metrics and monitors.
 *
 * Each step: one tf.tidy computes loss and gradients (tf.variableGrads over the
 * trainable variables of backbone + heads) and clips them; the loss is read on
 * the host and checked (NaN, Inf, explosion) before a second tf.tidy applies the
 * update, so a diverged step never touches the weights. Nothing awaits inside a tidy.
 *
 * This file runs the epochs and steps; its pieces sit beside it: pretrain-setup.ts
 * (run folder, data plan, model), pretrain-step.ts (which step runs, computing and
 * applying it), pretrain-checkpoints.ts (saving, resuming, init weights),
 * pretrain-epoch.ts (step rows, collapse alarm, end of epoch) and pretrain-end.ts
 * (finished, stopped, diverged, failed); pretrain-run.ts declares what they share.
 */
import path from 'node:path';
import type { TrainingProgress } from '../../pretext-tasks/types.js';
import type { Batch, ImageSource, InputSpec } from '../data/types.js';
import type { ManifestExtras } from '../export/manifest.js';
import type { PretrainRecipe } from '../recipes/pretrain-schema.js';
import { yieldToEventLoop } from '../util/event-loop.js';
import { Progress } from '../util/progress.js';
import { createRng } from '../util/rng.js';
import { defaultComponents, type TrainComponents } from './components.js';
import { MetricsLog } from './metrics.js';
import { resumeRun, saveRunCheckpoint, startFromInitWeights } from './pretrain-checkpoints.js';
import { divergedRun, finishRun, recordFailure, stopRun } from './pretrain-end.js';
import { beginEpoch, type EpochRecord, endEpoch, recordStep } from './pretrain-epoch.js';
import type { PretrainRun, TrainEvent } from './pretrain-run.js';
import {
  buildPretrainModel,
  closeSource,
  disposePretrainModel,
  openRunFolder,
  openValidation,
  planData,
  requirePath,
} from './pretrain-setup.js';
import { applyRunStep, buildCompiledStep, choosePretrainPath, computeRunStep } from './pretrain-step.js';
import { type RunLock, writeStatus } from './run-dir.js';
import { learningRateAt } from './schedules.js';
import { DivergenceError, divergence } from './step.js';

export type { TrainEvent };
export { DivergenceError, divergence };

export interface PretrainOptions {
  /** Unlabeled images: a folder, manifest or IDX file (opened by the data layer). */
  dataPath?: string;
  /** Or an already opened source (takes precedence over dataPath). */
  source?: ImageSource;
  /** Parent folder of runs; a new run goes to `<outDir>/<name>-<timestamp>/`. */
  outDir?: string;
  /** Exact run folder name under outDir (default: generated). */
  runId?: string;
  /** A run folder to continue from its last checkpoint. */
  resume?: string;
  /** Labelled validation images for the kNN monitor (path, or an opened source). */
  validationPath?: string;
  validationSource?: ImageSource;
  onEvent?: (event: TrainEvent) => void;
  /** Show a progress bar on stderr (default true). */
  progress?: boolean;
  /** Stop after this many steps in this call, as an abort does (checkpoint, status `stopped`). */
  maxSteps?: number;
  /** When aborted, the run finishes its current step, writes a checkpoint and returns `stopped`. */
  signal?: AbortSignal;
  components?: Partial<TrainComponents>;
}

export interface PretrainResult {
  runDir: string;
  status: 'finished' | 'stopped';
  metrics: MetricsLog;
  /** Loss of each step run in this call, in order. */
  losses: number[];
}

/**
 * Pretrains a backbone as `recipe` says; see docs/training.md. The run folder is
 * locked (run-dir.ts `acquireRunLock`) while this call writes it.
 */
export async function pretrain(given: PretrainRecipe, options: PretrainOptions = {}): Promise<PretrainResult> {
  const held: { lock?: RunLock } = {};
  try {
    return await pretrainLocked(given, options, held);
  } finally {
    held.lock?.release();
  }
}

async function pretrainLocked(
  given: PretrainRecipe,
  options: PretrainOptions,
  held: { lock?: RunLock },
): Promise<PretrainResult> {
  const parts: TrainComponents = { ...(await defaultComponents()), ...options.components };
  const task: PretrainRun['task'] = parts.getTask(given.task.id);
  const taskOptions = task.validate(given.task.options);
  const recipe: PretrainRecipe = structuredClone(given);
  recipe.task.options = structuredClone(taskOptions);
  const input: InputSpec = {
    size: recipe.input.size,
    channels: recipe.input.channels,
    mean: recipe.input.mean ?? new Array(recipe.input.channels).fill(0.5),
    std: recipe.input.std ?? new Array(recipe.input.channels).fill(0.5),
  };
  const train = recipe.train;

  const { runDir, resumeDir, inputs } = await openRunFolder(recipe, options, held);
  const source = options.source ?? (await parts.openSource(requirePath(inputs.dataPath)));
  const root = createRng(recipe.seed);
  const { stepsPerEpoch, loaderOptions } = planData(recipe, task, taskOptions, input, source, root);

  // Model, heads and optimizer; every variable is owned here and disposed in `finally`.
  const model = buildPretrainModel(parts, recipe, task, taskOptions, input, root, source);
  // The step: one compiled graph where the run allows it (training-path.ts), else the eager step.
  const trainingPath = choosePretrainPath(recipe, task, taskOptions, model);

  const progress = new Progress({
    total: train.epochs * stepsPerEpoch,
    label: 'pretrain',
    silent: options.progress === false,
  });
  const exportMetadata: ManifestExtras = {
    inputSize: input.size,
    mean: input.mean,
    std: input.std,
    pretextTask: recipe.task.id,
    source: `selfsup pretrain run ${path.basename(runDir)}`,
    ...(recipe.init.weights !== null ? { notes: { initWeights: recipe.init.weights } } : {}),
  };
  const validation = await openValidation(parts, recipe, options.validationSource, inputs.validationPath);
  const run: PretrainRun = {
    recipe,
    task,
    taskOptions,
    input,
    parts,
    runDir,
    root,
    source,
    stepsPerEpoch,
    loaderOptions,
    model,
    validation,
    exportMetadata,
    progress,
    emit: (event) => options.onEvent?.(event),
    compiledStep: undefined,
    position: { epoch: 0, step: 0, globalStep: 0 },
    metrics: new MetricsLog(),
    referenceLoss: null,
    lastGood: undefined,
    losses: [],
    stepsThisCall: 0,
  };

  try {
    if (resumeDir) await resumeRun(run, resumeDir);
    else if (recipe.init.weights !== null) await startFromInitWeights(run, recipe.init.weights);
    if (trainingPath.compiled) run.compiledStep = buildCompiledStep(run, trainingPath.precision);
    run.emit({
      type: 'start',
      runDir,
      epochs: train.epochs,
      stepsPerEpoch,
      resumedFrom: resumeDir,
      trainingStep: trainingPath.reason,
    });
    await writeStatus(runDir, { status: 'running', ...run.position });
    progress.update(run.position.globalStep);

    while (run.position.epoch < train.epochs) {
      const stopped = await runEpoch(run, options);
      if (stopped) return { runDir, status: 'stopped', metrics: run.metrics, losses: run.losses };
    }
    await finishRun(run);
    return { runDir, status: 'finished', metrics: run.metrics, losses: run.losses };
  } catch (error) {
    await recordFailure(run, error);
    throw error;
  } finally {
    run.compiledStep?.dispose();
    disposePretrainModel(model);
    if (validation && !options.validationSource) await closeSource(validation.source);
  }
}

/**
 * Trains the epoch at the run's position from its step on, then does the
 * end-of-epoch work (pretrain-epoch.ts). Returns true when an abort or
 * options.maxSteps stopped the run inside it (checkpoint and status written).
 */
async function runEpoch(run: PretrainRun, options: PretrainOptions): Promise<boolean> {
  const record = beginEpoch(run);
  const loader = run.parts.createLoader(run.source, run.loaderOptions(record.epoch, run.position.step));
  const iterator = loader[Symbol.asyncIterator]();
  try {
    while (run.position.step < run.stepsPerEpoch) {
      // Signal handlers (Ctrl-C, SIGTERM) run only when the event loop turns; cached batches never let it.
      await yieldToEventLoop();
      const stop = options.signal?.aborted
        ? 'interrupted'
        : options.maxSteps !== undefined && run.stepsThisCall >= options.maxSteps
          ? `stopped after ${options.maxSteps} step(s) (maxSteps)`
          : undefined;
      if (stop) {
        await stopRun(run, stop);
        return true;
      }
      const waitStart = performance.now();
      const next = await iterator.next();
      const dataWaitMs = performance.now() - waitStart;
      if (next.done) break;
      await trainStep(run, record, next.value, dataWaitMs);
    }
  } finally {
    await iterator.return?.();
    await loader.close?.();
  }
  await endEpoch(run, record, loader);
  return false;
}

/**
 * One step on `batch`: computed, checked (a diverged step throws before it
 * touches the weights), applied and recorded; then the run moves on a step and
 * writes a checkpoint when train.checkpointEverySteps says.
 */
async function trainStep(run: PretrainRun, record: EpochRecord, batch: Batch, dataWaitMs: number): Promise<void> {
  const train = run.recipe.train;
  const { epoch } = record;
  const { stepsPerEpoch } = run;
  const stepStart = performance.now();
  const lr = learningRateAt(
    train.optimizer.lr,
    train.schedule,
    { epoch, step: run.position.step, stepsPerEpoch, epochs: train.epochs },
    train.lrOverrides,
  );
  const progress: TrainingProgress = {
    globalStep: run.position.globalStep,
    totalSteps: train.epochs * stepsPerEpoch,
    epoch,
    epochs: train.epochs,
    stepsPerEpoch,
  };
  const { everySteps } = run.recipe.monitor.collapse;
  const measureSpread = everySteps > 0 && run.position.globalStep % everySteps === 0;

  const rng = run.root.derive('step', epoch, run.position.step);
  const computed = await computeRunStep(run, { batch, rng, lr, measureSpread, progress });
  const { loss, gradNorm } = computed;
  const problem = divergence(loss, gradNorm, run.referenceLoss, train.divergence);
  if (problem) {
    computed.dispose();
    throw await divergedRun(run, problem);
  }
  applyRunStep(run, computed, lr, epoch, progress);
  const probe = run.model.probe;
  const probeAccuracy =
    probe && computed.embeddings && batch.labels ? await probe.update(computed.embeddings, batch.labels) : undefined;
  computed.dispose();
  run.referenceLoss ??= loss;
  run.losses.push(loss);

  const seconds = (performance.now() - stepStart) / 1000;
  const timing = { lr, images: batch.indices.length, dataWaitMs, seconds, probeAccuracy };
  const row = recordStep(run, record, computed, timing);
  run.position = { ...run.position, step: run.position.step + 1, globalStep: run.position.globalStep + 1 };
  run.stepsThisCall++;
  run.progress.update(
    run.position.globalStep,
    `epoch ${epoch} loss ${loss.toFixed(4)} lr ${lr.toExponential(2)} ${row.imagesPerSecond.toFixed(1)} img/s`,
  );
  if (
    train.checkpointEverySteps > 0 &&
    run.position.globalStep % train.checkpointEverySteps === 0 &&
    run.position.step < stepsPerEpoch
  ) {
    await saveRunCheckpoint(run);
  }
}
