/**
 * Loading a finetuning recipe: keys of the old finetuning dialect are refused
 * with their new spelling, then the schema check (src/recipes/finetune-schema.ts).
 */
import path from 'node:path';
import { describeValue } from '../util/errors.js';
import { FINETUNE_SCHEMA, type FinetuneRecipe } from './finetune-schema.js';
import { loadRecipeFile, RecipeError, shippedRecipesDir, validateRecipe } from './load.js';
import { defaultsOf, isPlainObject, SchemaError } from './schema.js';

/** Old finetuning keys (before one dialect for every recipe) and how to write them now. */
const RENAMED: Record<string, string> = {
  'train.learningRate': 'train.optimizer.lr',
  'train.momentum': 'train.optimizer.momentum',
  'train.weightDecay': 'train.optimizer.weightDecay (decoupled decay as before: train.optimizer.name adamw)',
  'train.warmupEpochs': 'train.schedule.warmupEpochs',
  'probe.learningRate': 'probe.lr',
};

/** What an old `train.optimizer: <name>` string becomes. */
const OLD_OPTIMIZERS: Record<string, string> = {
  adam: '{name: adam}',
  momentum: '{name: sgd, momentum: 0.9, nesterov: true}',
  sgd: '{name: sgd, momentum: 0}',
};

/**
 * Throws a SchemaError naming the new spelling when `data` uses a key of the old
 * finetuning dialect (`train.learningRate`, `train.optimizer: adam`, ...).
 */
export function checkFinetuneDialect(data: unknown): void {
  if (!isPlainObject(data)) return;
  for (const [old, now] of Object.entries(RENAMED)) {
    const [section, key] = old.split('.');
    const part = data[section];
    if (isPlainObject(part) && key in part) {
      throw new SchemaError(`recipe.${old}`, `renamed: write ${now} (finetuning recipes use the pretraining dialect)`);
    }
  }
  const train = data.train;
  if (!isPlainObject(train)) return;
  for (const key of ['optimizer', 'schedule'] as const) {
    const value = train[key];
    if (typeof value !== 'string') continue;
    const spelled = key === 'optimizer' ? (OLD_OPTIMIZERS[value] ?? `{name: ${value}}`) : `{name: ${value}}`;
    throw new SchemaError(
      `recipe.train.${key}`,
      `Expected a mapping {name, ...} but received ${describeValue(value)}: write train.${key}: ${spelled} (finetuning recipes use the pretraining dialect)`,
    );
  }
}

/** Validates recipe data (already merged from `extends`); `file` prefixes errors. */
export function resolveFinetuneRecipe(data: unknown, file?: string): FinetuneRecipe {
  try {
    checkFinetuneDialect(data);
  } catch (e) {
    if (e instanceof SchemaError && file) throw new RecipeError(file, e.message, e.keyPath);
    throw e;
  }
  return validateRecipe<FinetuneRecipe>(FINETUNE_SCHEMA, data, file);
}

/** Reads a recipe file (with `extends`) and validates it; the name defaults to the file name. */
export function loadFinetuneRecipe(file: string): FinetuneRecipe {
  const recipe = loadRecipeFile<FinetuneRecipe>(file, FINETUNE_SCHEMA, checkFinetuneDialect);
  recipe.name ??= path.basename(file).replace(/\.ya?ml$/, '');
  return recipe;
}

/** The recipe every key of which is its default. */
export function finetuneDefaults(): FinetuneRecipe {
  return defaultsOf(FINETUNE_SCHEMA) as unknown as FinetuneRecipe;
}

/**
 * The recipe `selfsup finetune` and `selfsup budget` use when none is given: the
 * few-labels default, chosen on a validation split (see the recipe's comment).
 */
export const DEFAULT_FINETUNE_RECIPE = 'finetune-few-labels.yaml';

/** The path of the default finetuning recipe among the shipped recipes. */
export function defaultFinetuneRecipeFile(): string {
  return path.join(shippedRecipesDir(), DEFAULT_FINETUNE_RECIPE);
}
