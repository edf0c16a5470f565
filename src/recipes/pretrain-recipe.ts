/**
 * Loading a pretraining recipe: schema check, cross-field checks, task options
 * checked by the task plugin, and command-line overrides.
 */
import path from 'node:path';
import { getTask as registeredTask } from '../../pretext-tasks/registry.js';
import type { PretextTask } from '../../pretext-tasks/types.js';
import { describeValue, UsageError } from '../util/errors.js';
import { RecipeError, readRecipeTree, validateRecipe } from './load.js';
import { PRETRAIN_SCHEMA, type PretrainRecipe } from './pretrain-schema.js';
import { SchemaError } from './schema.js';

// biome-ignore lint/suspicious/noExplicitAny: tasks have their own option types
export type TaskLookup = (id: string) => PretextTask<any, any>;

/**
 * Checks what the schema cannot: mean/std lengths against channels, and the
 * task options through the task's own validate(). Fills mean/std defaults.
 */
export function checkPretrainRecipe(recipe: PretrainRecipe, getTask: TaskLookup): PretrainRecipe {
  const channels = recipe.input.channels;
  if (channels !== 1 && channels !== 3) {
    throw new SchemaError('recipe.input.channels', `Expected 1 or 3 but received ${describeValue(channels)}`);
  }
  for (const key of ['mean', 'std'] as const) {
    const values = recipe.input[key];
    if (values === null) recipe.input[key] = new Array(channels).fill(0.5);
    else if (values.length !== channels) {
      throw new SchemaError(
        `recipe.input.${key}`,
        `Expected a list of exactly ${channels} numbers (one per channel) but received ${describeValue(values)}`,
      );
    }
  }
  let task: PretextTask;
  try {
    task = getTask(recipe.task.id);
  } catch (e) {
    throw new SchemaError('recipe.task.id', (e as Error).message);
  }
  recipe.task.options = task.validate(recipe.task.options ?? {}) as Record<string, unknown>;
  return recipe;
}

/**
 * Validates merged recipe data (e.g. parsed from YAML) into a resolved pretraining
 * recipe. `getTask` finds the task plugin (default: the built-in task registry).
 */
export function resolvePretrainRecipe(
  data: unknown,
  getTask: TaskLookup = registeredTask,
  file?: string,
): PretrainRecipe {
  const recipe = validateRecipe<PretrainRecipe>(PRETRAIN_SCHEMA, data, file);
  try {
    return checkPretrainRecipe(recipe, getTask);
  } catch (e) {
    if (file && e instanceof UsageError && !(e instanceof RecipeError)) {
      throw new RecipeError(file, e.message, e instanceof SchemaError ? e.keyPath : undefined);
    }
    throw e;
  }
}

/** Reads a recipe file (with `extends`), validates it, and fills the run name from the file name. */
export function loadPretrainRecipe(file: string, getTask: TaskLookup = registeredTask): PretrainRecipe {
  const data = readRecipeTree(file);
  const recipe = resolvePretrainRecipe(data, getTask, file);
  recipe.name ??= path.basename(file).replace(/\.ya?ml$/, '');
  return recipe;
}

/** Changes a user may make on the command line, also when resuming. */
export interface RecipeOverrides {
  epochs?: number;
  seed?: number;
  /** Merged over `train.lrOverrides`. */
  lrOverrides?: Record<number, number>;
  /** Sets `init.weights` (continued pretraining). */
  initWeights?: string;
}

/** Returns a copy of `recipe` with the overrides applied (validated like recipe keys). */
export function applyRecipeOverrides(recipe: PretrainRecipe, overrides: RecipeOverrides): PretrainRecipe {
  const out = structuredClone(recipe);
  if (overrides.epochs !== undefined) {
    if (!Number.isInteger(overrides.epochs) || overrides.epochs < 1) {
      throw new UsageError(`Expected an integer >= 1 for --epochs but received ${describeValue(overrides.epochs)}`);
    }
    out.train.epochs = overrides.epochs;
  }
  if (overrides.seed !== undefined) {
    if (!Number.isInteger(overrides.seed) || overrides.seed < 0) {
      throw new UsageError(`Expected an integer >= 0 for --seed but received ${describeValue(overrides.seed)}`);
    }
    out.seed = overrides.seed;
  }
  if (overrides.initWeights !== undefined) out.init.weights = overrides.initWeights;
  for (const [epoch, value] of Object.entries(overrides.lrOverrides ?? {})) {
    out.train.lrOverrides[String(Number(epoch))] = value;
  }
  return out;
}

/** Parses `--lr-override 3=0.01` (0-based epoch = learning rate). */
export function parseLrOverride(text: string): [number, number] {
  const match = /^\s*(\d+)\s*=\s*([0-9.eE+-]+)\s*$/.exec(text);
  const lr = match ? Number(match[2]) : Number.NaN;
  if (!match || !Number.isFinite(lr) || lr <= 0 || lr > 10) {
    throw new UsageError(
      `Expected EPOCH=LR (a 0-based epoch and a learning rate greater than 0 and at most 10, e.g. 3=0.01) for --lr-override but received "${text}"`,
    );
  }
  return [Number(match[1]), lr];
}
