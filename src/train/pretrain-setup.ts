/**
 * What a pretraining run prepares before its first step, in the order loop.ts
 * asks for it: the run folder (new, or the resumed one) and its lock, the data
 * plan (seeded subset, steps per epoch, each epoch's loader options), the model
 * it owns (backbone, heads, task state, online probe, optimizer, and every
 * variable a checkpoint holds) and the kNN monitor's validation images.
 */
import type { Backbone, Head } from '../backbones/types.js';
import type { ImageSource, InputSpec, LoaderOptions } from '../data/types.js';
import type { PretrainRecipe } from '../recipes/pretrain-schema.js';
import { UsageError } from '../util/errors.js';
import type { Rng } from '../util/rng.js';
import { type NamedTensorVariable, resumePoint } from './checkpoint.js';
import type { TrainComponents } from './components.js';
import { knnSplit } from './monitor.js';
import { createOnlineProbe } from './online-probe.js';
import { createOptimizer, type TrainableParam } from './optimizers.js';
import type { PretrainModel, PretrainRun, TrainEvent, Validation } from './pretrain-run.js';
import {
  acquireRunLock,
  checkResumeRecipe,
  createRunDir,
  type RunInputs,
  type RunLock,
  readResolvedRecipe,
  recordRunInputs,
  writeResolvedRecipe,
} from './run-dir.js';
import { TaskState } from './task-state.js';

/** Where a run goes: pretrain's options for the run folder. */
export interface RunFolderOptions extends RunInputs {
  outDir?: string;
  runId?: string;
  resume?: string;
  onEvent?: (event: TrainEvent) => void;
}

export interface RunFolder {
  runDir: string;
  /** The checkpoint a resumed run continues from (undefined: it starts from step 0). */
  resumeDir: string | undefined;
  /** The data paths given, or recorded by an earlier call for the same run. */
  inputs: RunInputs;
}

/**
 * The run folder: new, or the one being resumed (its recipe may differ only in
 * epochs / lrOverrides), locked into `held` and holding the resolved recipe and run inputs.
 */
export async function openRunFolder(
  recipe: PretrainRecipe,
  options: RunFolderOptions,
  held: { lock?: RunLock },
): Promise<RunFolder> {
  let runDir: string;
  let resumeDir: string | undefined;
  const takeOver = (message: string) => options.onEvent?.({ type: 'warning', message });
  if (options.resume) {
    runDir = options.resume;
    checkResumeRecipe(readResolvedRecipe(runDir), recipe, runDir);
    held.lock = acquireRunLock(runDir, takeOver);
    resumeDir = await resumePoint(runDir);
    // A run that stopped before its first checkpoint starts again from step 0.
    if (!resumeDir) takeOver(`${runDir} has no checkpoint yet: starting it from the first step`);
  } else {
    const inputs = [
      { path: options.dataPath ?? '', option: '--data' },
      { path: options.validationPath ?? '', option: '--val' },
    ];
    runDir = createRunDir(options.outDir ?? 'runs', recipe.name ?? recipe.task.id, options.runId, inputs);
    held.lock = acquireRunLock(runDir, takeOver);
  }
  await writeResolvedRecipe(runDir, recipe);
  const inputs = await recordRunInputs(runDir, options);
  return { runDir, resumeDir, inputs };
}

export interface DataPlan {
  /** The images a run trains on when recipe.data.limit picks a seeded subset. */
  subset: Int32Array | undefined;
  stepsPerEpoch: number;
  /** The loader options of `epoch`, starting at batch `startBatch` (a resumed epoch). */
  loaderOptions(epoch: number, startBatch: number): LoaderOptions;
}

/** The batches a run draws from `source`: throws UsageError when dropLast leaves no full batch. */
export function planData(
  recipe: PretrainRecipe,
  task: PretrainRun['task'],
  taskOptions: object,
  input: InputSpec,
  source: ImageSource,
  root: Rng,
): DataPlan {
  let subset: Int32Array | undefined;
  if (recipe.data.limit !== null && recipe.data.limit < source.size) {
    subset = root.derive('subset').permutation(source.size).slice(0, recipe.data.limit).sort();
  }
  const images = subset?.length ?? source.size;
  const fullSteps = recipe.data.dropLast
    ? Math.floor(images / recipe.data.batchSize)
    : Math.ceil(images / recipe.data.batchSize);
  if (fullSteps < 1) {
    throw new UsageError(
      `recipe.data.batchSize (${recipe.data.batchSize}) is larger than the ${images} images with dropLast: true`,
    );
  }
  const stepsPerEpoch = Math.min(fullSteps, recipe.train.maxStepsPerEpoch ?? fullSteps);
  const views = task.views(taskOptions, input);
  const loaderOptions = (epoch: number, startBatch: number): LoaderOptions => ({
    batchSize: recipe.data.batchSize,
    views,
    channels: input.channels,
    seed: recipe.seed,
    epoch,
    shuffle: true,
    dropLast: recipe.data.dropLast,
    startBatch,
    subset,
    workers: recipe.data.workers ?? undefined,
    prefetch: recipe.data.prefetch,
    cacheSize: recipe.data.cacheSize ?? undefined,
  });
  return { subset, stepsPerEpoch, loaderOptions };
}

/** Model, heads, task state, online probe and optimizer, each drawing from its own stream of `root`. */
export function buildPretrainModel(
  parts: TrainComponents,
  recipe: PretrainRecipe,
  task: PretrainRun['task'],
  taskOptions: object,
  input: InputSpec,
  root: Rng,
  source: ImageSource,
): PretrainModel {
  const backbone: Backbone = parts.createBackbone(
    { ...recipe.backbone, inputChannels: input.channels },
    root.derive('backbone'),
  );
  const heads = task.createHeads(taskOptions, backbone.featureDim, root.derive('heads'));
  const headModules: Record<string, Head> = task.headModules(heads);
  const params: TrainableParam[] = [];
  const saved: NamedTensorVariable[] = [];
  const addModule = (prefix: string, module: { variables(): ReturnType<Backbone['variables']> }) => {
    for (const v of module.variables()) {
      const name = `${prefix}.${v.name}`;
      saved.push({ name, variable: v.variable });
      if (v.trainable) params.push({ name, variable: v.variable, kind: v.kind });
    }
  };
  addModule('backbone', backbone);
  for (const [key, head] of Object.entries(headModules)) addModule(`heads.${key}`, head);
  // The task's cross-step state (momentum target, queues): created here, checkpointed with the weights.
  const taskState = TaskState.create({
    task,
    taskOptions,
    backbone,
    heads,
    createBackbone: () =>
      parts.createBackbone({ ...recipe.backbone, inputChannels: input.channels }, root.derive('target')),
    rng: root.derive('task-state'),
  });
  saved.push(...taskState.variables());
  const probe = createOnlineProbe(
    recipe.monitor.onlineProbe,
    source.labels,
    source.classNames,
    backbone.featureDim,
    root.derive('online-probe'),
  );
  if (probe) saved.push(...probe.variables());
  const optimizer = createOptimizer(recipe.train.optimizer, params);
  saved.push(...optimizer.stateVariables());
  const backboneParams = params.filter((p) => p.name.startsWith('backbone.'));
  return { backbone, heads, headModules, params, backboneParams, saved, taskState, probe, optimizer };
}

/** Disposes what buildPretrainModel created, in the loop's order: optimizer, task state, probe, heads, backbone. */
export function disposePretrainModel(model: PretrainModel): void {
  model.optimizer.dispose();
  model.taskState.dispose();
  model.probe?.dispose();
  for (const head of Object.values(model.headModules)) head.dispose();
  model.backbone.dispose();
}

/** The kNN monitor's labelled images (given, or opened from `validationPath`) and their seeded bank/query split. */
export async function openValidation(
  parts: TrainComponents,
  recipe: PretrainRecipe,
  given: ImageSource | undefined,
  validationPath: string | undefined,
): Promise<Validation | undefined> {
  const source = given ?? (validationPath ? await parts.openSource(validationPath, { labelled: true }) : undefined);
  if (!source) return undefined;
  const { bankImages, queryImages } = recipe.monitor.knn;
  return { source, split: knnSplit(source, bankImages, queryImages, recipe.seed) };
}

/** Closes a source the run opened itself (a given one belongs to the caller). */
export async function closeSource(source: ImageSource): Promise<void> {
  const closable = source as ImageSource & { close?: () => unknown };
  await closable.close?.();
}

export function requirePath(dataPath: string | undefined): string {
  if (!dataPath) throw new UsageError('pretrain needs data: pass --data <folder|manifest.arrow|file.idx>');
  return dataPath;
}
