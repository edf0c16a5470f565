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
 */
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { PretextTask, TrainingProgress } from '../../pretext-tasks/types.js';
import { evalView } from '../data/augment/presets.js';
import type { Batch, ImageSource, InputSpec } from '../data/types.js';
import type { ManifestExtras } from '../export/manifest.js';
import type { PretrainRecipe } from '../recipes/pretrain-schema.js';
import { UsageError } from '../util/errors.js';
import { yieldToEventLoop } from '../util/event-loop.js';
import { Progress } from '../util/progress.js';
import { createRng, type Rng } from '../util/rng.js';
import {
  checkpointName,
  loadCheckpoint,
  saveCheckpoint,
  type TrainingState,
  writeModuleTensors,
} from './checkpoint.js';
import { isCollapsed } from './collapse.js';
import { type CompiledOptimizerName, CompiledTrainingStep, compiledStepProblem } from './compiled-step.js';
import { defaultComponents, type TrainComponents } from './components.js';
import { MetricsLog, type MetricsRow, summarizeEpoch, writeCurves } from './metrics.js';
import { knnAccuracy } from './monitor.js';
import type { TrainEvent } from './pretrain-run.js';
import {
  buildPretrainModel,
  closeSource,
  disposePretrainModel,
  openRunFolder,
  openValidation,
  planData,
  requirePath,
} from './pretrain-setup.js';
import { type RunLock, writeStatus } from './run-dir.js';
import { learningRateAt } from './schedules.js';
import { computeStep, DivergenceError, divergence } from './step.js';
import { chooseTrainingPath } from './training-path.js';

export type { TrainEvent };
export { DivergenceError, divergence };

/**
 * The optimizers pretraining runs compiled: every one (runCompiledStep feeds Adam's
 * per-parameter update counts; the applied update is counted as the eager optimizer counts it).
 */
const PRETRAIN_OPTIMIZERS: readonly CompiledOptimizerName[] = ['sgd', 'lars', 'adam', 'adamw'];

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
  // biome-ignore lint/suspicious/noExplicitAny: tasks have their own option types
  const task: PretextTask<any, any> = parts.getTask(given.task.id);
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
  const { backbone, heads, headModules, params, backboneParams, saved, taskState, probe, optimizer } = model;
  const collapseMinRatio = recipe.monitor.collapse.minRatio ?? task.collapseMinRatio ?? 0.1;
  // The step: one compiled graph where the run allows it (training-path.ts), else the eager step.
  // A task's state (momentum target, queue) compiles with it when its hook runs it (compiledStepProblem).
  const loopProblem = probe
    ? "the online linear probe (recipe.monitor.onlineProbe) needs each step's embeddings"
    : recipe.init.weights !== null && recipe.init.warmEpochs > 0
      ? 'the backbone has its own learning rate while the heads warm up (recipe.init.warmEpochs)'
      : undefined;
  const trainingPath = chooseTrainingPath(
    train.compile,
    train.precision,
    train.compile === 'off'
      ? undefined
      : (loopProblem ??
          compiledStepProblem(
            { task, taskOptions, backbone, heads: headModules, optimizer: train.optimizer },
            PRETRAIN_OPTIMIZERS,
          )),
  );
  let compiledStep: CompiledTrainingStep | undefined;
  // Continued pretraining: the backbone is a parameter group at a lower rate while the random heads settle.
  const setBackboneGroupFor = (epoch: number) => {
    const warm = recipe.init.weights !== null && epoch < recipe.init.warmEpochs;
    for (const p of backboneParams) p.lrScale = warm ? recipe.init.backboneLrMultiplier : 1;
  };

  const emit = (event: TrainEvent) => options.onEvent?.(event);
  const progress = new Progress({
    total: train.epochs * stepsPerEpoch,
    label: 'pretrain',
    silent: options.progress === false,
  });
  const losses: number[] = [];
  let metrics = new MetricsLog();
  let position = { epoch: 0, step: 0, globalStep: 0 };
  let referenceLoss: number | null = null;
  let lastGood: string | undefined;

  const exportMetadata: ManifestExtras = {
    inputSize: input.size,
    mean: input.mean,
    std: input.std,
    pretextTask: recipe.task.id,
    source: `selfsup pretrain run ${path.basename(runDir)}`,
    ...(recipe.init.weights !== null ? { notes: { initWeights: recipe.init.weights } } : {}),
  };
  const state = (): TrainingState => ({
    epoch: position.epoch,
    step: position.step,
    globalStep: position.globalStep,
    stepsPerEpoch,
    seed: recipe.seed,
    referenceLoss,
    optimizer: { name: optimizer.name, ...optimizer.hostState() },
    rngState: root.state(),
    savedAt: new Date().toISOString(),
    numBatchesTracked: (backbone as { numBatchesTracked?: number }).numBatchesTracked,
  });
  const checkpoint = async () => {
    compiledStep?.pull();
    const exportInto = parts.saveBackbone
      ? (dir: string) => parts.saveBackbone!(backbone, path.join(dir, 'backbone'), exportMetadata)
      : undefined;
    lastGood = await saveCheckpoint(runDir, saved, state(), metrics, train.keepCheckpoints, exportInto);
    await metrics.writeArrow(path.join(runDir, 'metrics.arrow'));
    emit({ type: 'checkpoint', dir: lastGood });
  };

  const validation = await openValidation(parts, recipe, options.validationSource, inputs.validationPath);

  try {
    if (resumeDir) {
      const loaded = loadCheckpoint(resumeDir, saved);
      if (loaded.state.stepsPerEpoch !== stepsPerEpoch) {
        throw new UsageError(
          `cannot resume ${runDir}: it had ${loaded.state.stepsPerEpoch} steps per epoch, the data now gives ${stepsPerEpoch}`,
        );
      }
      metrics = loaded.metrics;
      position = { epoch: loaded.state.epoch, step: loaded.state.step, globalStep: loaded.state.globalStep };
      referenceLoss = loaded.state.referenceLoss;
      optimizer.restoreHostState(loaded.state.optimizer);
      if (loaded.state.numBatchesTracked !== undefined)
        (backbone as { numBatchesTracked?: number }).numBatchesTracked = loaded.state.numBatchesTracked;
      lastGood = resumeDir;
      await metrics.writeArrow(path.join(runDir, 'metrics.arrow'));
    } else if (recipe.init.weights !== null) {
      if (!parts.loadInitWeights) throw new UsageError('recipe.init.weights is set but no weight loader was given');
      const from = await parts.loadInitWeights(backbone, recipe.init.weights);
      for (const key of ['mean', 'std'] as const) {
        const differs =
          from[key].length !== input[key].length || from[key].some((v, i) => Math.abs(v - input[key][i]) > 1e-6);
        if (differs) {
          emit({
            type: 'warning',
            message:
              `recipe.input.${key} [${input[key].join(', ')}] differs from the one ${recipe.init.weights} was trained with ` +
              `[${from[key].join(', ')}]; set recipe.input.${key} to match unless the change is deliberate`,
          });
        }
      }
    }
    if (trainingPath.compiled) {
      // Built once; the weights (just initialised, loaded or resumed) are copied into its session.
      // The optimizer's slots (SGD/LARS momentum, Adam's moments) are mirrored with their parameters.
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
      compiledStep = new CompiledTrainingStep({
        task,
        taskOptions,
        backbone,
        heads: headModules,
        variables: mirrored,
        optimizer: train.optimizer,
        gradClipNorm: train.gradClipNorm,
        imageShape: [input.size, input.size, input.channels],
        precision: trainingPath.precision,
        intraOpThreads: Number(process.env.TF_NUM_INTRAOP_THREADS) || 0,
        interOpThreads: Number(process.env.TF_NUM_INTEROP_THREADS) || 0,
        state: taskState.compiledState(),
        optimizers: PRETRAIN_OPTIMIZERS,
      });
    }
    emit({
      type: 'start',
      runDir,
      epochs: train.epochs,
      stepsPerEpoch,
      resumedFrom: resumeDir,
      trainingStep: trainingPath.reason,
    });
    await writeStatus(runDir, { status: 'running', ...position });
    progress.update(position.globalStep);
    let stepsThisCall = 0;

    while (position.epoch < train.epochs) {
      const epoch = position.epoch;
      const epochStart = performance.now();
      // Step rows of this epoch so far (a resumed epoch continues its summary).
      const epochRows: MetricsRow[] = metrics.stepRows().filter((r) => r.epoch === epoch);
      let collapseWarned = false;
      const loader = parts.createLoader(source, loaderOptions(epoch, position.step));
      const iterator = loader[Symbol.asyncIterator]();
      try {
        while (position.step < stepsPerEpoch) {
          // Signal handlers (Ctrl-C, SIGTERM) run only when the event loop turns; cached batches never let it.
          await yieldToEventLoop();
          const stop = options.signal?.aborted
            ? 'interrupted'
            : options.maxSteps !== undefined && stepsThisCall >= options.maxSteps
              ? `stopped after ${options.maxSteps} step(s) (maxSteps)`
              : undefined;
          if (stop) {
            // Interrupted (Ctrl-C, SIGTERM) or the step budget is spent: keep everything done so far, then stop.
            if (lastGood === undefined || !lastGood.endsWith(checkpointName(position.globalStep))) await checkpoint();
            await writeStatus(runDir, { status: 'stopped', message: stop, ...position });
            emit({ type: 'end', runDir, status: 'stopped' });
            progress.finish(stop === 'interrupted' ? 'interrupted' : 'stopped');
            return { runDir, status: 'stopped', metrics, losses };
          }
          const waitStart = performance.now();
          const next = await iterator.next();
          const dataWaitMs = performance.now() - waitStart;
          if (next.done) break;
          const batch: Batch = next.value;
          const stepStart = performance.now();
          const lr = learningRateAt(
            train.optimizer.lr,
            train.schedule,
            { epoch, step: position.step, stepsPerEpoch, epochs: train.epochs },
            train.lrOverrides,
          );
          const stepPosition: TrainingProgress = {
            globalStep: position.globalStep,
            totalSteps: train.epochs * stepsPerEpoch,
            epoch,
            epochs: train.epochs,
            stepsPerEpoch,
          };
          const measureSpread =
            recipe.monitor.collapse.everySteps > 0 && position.globalStep % recipe.monitor.collapse.everySteps === 0;

          const stepRng = root.derive('step', epoch, position.step);
          const computed = compiledStep
            ? runCompiledStep(
                compiledStep,
                batch,
                stepRng,
                lr,
                measureSpread,
                // Adam's bias correction: each parameter's own update count with this step.
                (name) => optimizer.updateCount(name) + 1,
                taskState.momentum(stepPosition),
              )
            : await computeStep({
                task,
                taskOptions,
                backbone,
                heads,
                params,
                batch,
                rng: stepRng,
                gradClipNorm: train.gradClipNorm,
                measureSpread,
                context: taskState.context(stepPosition),
                keepEmbeddings: probe !== undefined,
              });
          const {
            loss: lossValue,
            gradNorm: normValue,
            metrics: metricValues,
            spread: spreadValue,
            embeddingDim,
          } = computed;
          const problem = divergence(lossValue, normValue, referenceLoss, train.divergence);
          if (problem) {
            computed.dispose();
            const where = `epoch ${epoch}, step ${position.step} (global step ${position.globalStep + 1})`;
            const kept = lastGood ? `the last good checkpoint is ${lastGood}` : 'no checkpoint had been written yet';
            const message = `training stopped at ${where}: ${problem}; ${kept}. Lower the learning rate (recipe.train.optimizer.lr or --lr-override ${epoch}=LR) or set recipe.train.gradClipNorm, then resume.`;
            await metrics.writeArrow(path.join(runDir, 'metrics.arrow'));
            await writeStatus(runDir, { status: 'diverged', message, ...position });
            progress.finish('diverged');
            throw new DivergenceError(message, runDir, lastGood);
          }
          setBackboneGroupFor(epoch);
          if (compiledStep) {
            // The session applied the update; count it as the eager optimizer does:
            // one step, and one update for each parameter the loss reached (Adam's own t).
            optimizer.countUpdate(compiledStep.updatedNames);
            // As the eager backbone counts its training calls: one per forward pass (two-view methods: per view).
            const tracked = backbone as { numBatchesTracked?: number };
            if (tracked.numBatchesTracked !== undefined) tracked.numBatchesTracked += compiledStep.forwardPasses;
          } else {
            tf.tidy(() => optimizer.apply(computed.grads, lr));
          }
          // The compiled step updated the task's state (buffers, then the EMA) in its session.
          if (!compiledStep) taskState.update(computed.bufferUpdates, stepPosition);
          const probeAccuracy =
            probe && computed.embeddings && batch.labels
              ? await probe.update(computed.embeddings, batch.labels)
              : undefined;
          computed.dispose();
          referenceLoss ??= lossValue;
          losses.push(lossValue);

          const seconds = (performance.now() - stepStart) / 1000;
          const row: MetricsRow = {
            kind: 'step',
            epoch,
            step: position.step,
            globalStep: position.globalStep + 1,
            loss: lossValue,
            lr,
            gradNorm: normValue,
            imagesPerSecond: batch.indices.length / Math.max(seconds, 1e-9),
            dataWaitMs,
            embeddingSpread: spreadValue,
            knnAccuracy: Number.NaN,
            seconds,
            ...metricValues,
            ...(probeAccuracy === undefined ? {} : { probeAccuracy }),
          };
          metrics.add(row);
          epochRows.push(row);
          emit({ type: 'step', row });
          if (
            Number.isFinite(spreadValue) &&
            !collapseWarned &&
            isCollapsed(spreadValue, embeddingDim, collapseMinRatio)
          ) {
            collapseWarned = true;
            emit({
              type: 'warning',
              message: `possible collapse at epoch ${epoch}, step ${position.step}: embedding spread ${spreadValue.toExponential(2)} is below ${collapseMinRatio} x 1/sqrt(${embeddingDim}) = ${(collapseMinRatio / Math.sqrt(embeddingDim)).toExponential(2)}`,
            });
          }
          position = { ...position, step: position.step + 1, globalStep: position.globalStep + 1 };
          stepsThisCall++;
          progress.update(
            position.globalStep,
            `epoch ${epoch} loss ${lossValue.toFixed(4)} lr ${lr.toExponential(2)} ${row.imagesPerSecond.toFixed(1)} img/s`,
          );
          if (
            train.checkpointEverySteps > 0 &&
            position.globalStep % train.checkpointEverySteps === 0 &&
            position.step < stepsPerEpoch
          ) {
            await checkpoint();
          }
        }
      } finally {
        await iterator.return?.();
        await loader.close?.();
      }
      const bad = (loader.stats?.() as { bad?: Array<{ name: string; reason: string }> } | undefined)?.bad ?? [];
      if (bad.length) {
        const examples = bad
          .slice(0, 3)
          .map((b) => `${b.name} (${b.reason})`)
          .join('; ');
        emit({
          type: 'warning',
          message: `epoch ${epoch}: ${bad.length} image(s) could not be loaded and were replaced: ${examples}`,
        });
      }

      // End of epoch: summary row, monitors, checkpoint.
      const epochSeconds = (performance.now() - epochStart) / 1000;
      const summary = summarizeEpoch(epochRows, epoch, position.globalStep, epochSeconds);
      const lastEpoch = epoch + 1 === train.epochs;
      if (validation && ((epoch + 1) % recipe.monitor.knn.everyEpochs === 0 || lastEpoch)) {
        compiledStep?.pull();
        const evalViews = [evalView(input)];
        summary.knnAccuracy = await knnAccuracy(
          backbone,
          validation.source,
          validation.split,
          (indices) =>
            parts.createLoader(validation!.source, {
              ...loaderOptions(0, 0),
              views: evalViews,
              subset: indices,
              shuffle: false,
              dropLast: false,
              batchSize: Math.min(256, recipe.data.batchSize),
            }),
          recipe.monitor.knn.k,
          recipe.monitor.knn.temperature,
        );
      }
      metrics.add(summary);
      emit({ type: 'epoch', row: summary });
      position = { epoch: epoch + 1, step: 0, globalStep: position.globalStep };
      if ((epoch + 1) % train.checkpointEveryEpochs === 0 || lastEpoch) await checkpoint();
    }

    // The finished run: backbone export, curves, status.
    const exportDir = path.join(runDir, 'backbone');
    compiledStep?.pull();
    if (parts.saveBackbone) await parts.saveBackbone(backbone, exportDir, exportMetadata);
    else await writeModuleTensors(exportDir, backbone, { config: backbone.config, ...exportMetadata });
    await metrics.writeArrow(path.join(runDir, 'metrics.arrow'));
    await writeCurves(path.join(runDir, 'curves.png'), metrics, `${recipe.task.id} / ${recipe.backbone.arch}`);
    await writeStatus(runDir, { status: 'finished', ...position });
    progress.finish('done');
    emit({ type: 'end', runDir, status: 'finished' });
    return { runDir, status: 'finished', metrics, losses };
  } catch (error) {
    if (!(error instanceof DivergenceError || error instanceof UsageError)) {
      // Any other failure: say so in status.json; the last checkpoint stays the resume point.
      await writeStatus(runDir, { status: 'failed', message: (error as Error).message, ...position }).catch(() => {});
    }
    throw error;
  } finally {
    compiledStep?.dispose();
    disposePretrainModel(model);
    if (validation && !options.validationSource) await closeSource(validation.source);
  }
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
) {
  const views = batch.views.map((v) => tf.tensor(v.data, v.shape, 'float32'));
  try {
    const result = step.run(views, rng, lr, measureSpread, updateCount, targetMomentum);
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
