/**
 * From a finetuning recipe (schema and defaults: src/recipes/finetune-schema.ts)
 * to what the finetuning loop takes: the resolved input and TrainOptions.
 */

import { type AnyPretextTask, getTask } from '../../pretext-tasks/registry.js';
import { validatePipeline } from '../data/augment/pipeline.js';
import {
  LABELED_VIEW_NAMES,
  type LabeledViewName,
  labeledView,
  strongView,
  weakView,
} from '../data/augment/presets.js';
import type { InputSpec, PipelineSpec } from '../data/types.js';
import type { FinetuneRecipe } from '../recipes/finetune-schema.js';
import { RecipeError } from '../recipes/load.js';
import { SchemaError } from '../recipes/schema.js';
import { UsageError } from '../util/errors.js';
import type { AuxiliaryTask, TrainOptions } from './train.js';

function checkView(value: unknown, key: string, channels: 1 | 3): PipelineSpec {
  try {
    validatePipeline(value, channels, key);
  } catch (e) {
    if (e instanceof UsageError)
      throw new SchemaError(key, e.message.startsWith(key) ? e.message.slice(key.length + 2) : e.message);
    throw e;
  }
  return value as PipelineSpec;
}

/** The resolved input of a recipe given the backbone's manifest values. */
export function resolveInput(
  recipe: FinetuneRecipe,
  channels: 1 | 3,
  manifest: { inputSize: number | null; mean: number[]; std: number[] },
): InputSpec {
  const mean = recipe.input.mean ?? manifest.mean;
  const std = recipe.input.std ?? manifest.std;
  for (const [key, values] of [
    ['mean', mean],
    ['std', std],
  ] as const) {
    if (values.length !== channels) {
      throw new SchemaError(
        `recipe.input.${key}`,
        `Expected a list of exactly ${channels} numbers (one per channel) but received [${values.join(', ')}]`,
      );
    }
  }
  return { size: recipe.input.size ?? manifest.inputSize ?? 32, channels, mean, std };
}

/**
 * Where a recipe's input disagrees with what the backbone's manifest records (the
 * preprocessing its weights were trained with, e.g. ImageNet mean/std for
 * torchvision weights): one message each. The recipe still wins; the caller warns.
 */
export function preprocessingMismatches(
  recipe: FinetuneRecipe,
  manifest: { inputSize: number | null; mean: number[]; std: number[] },
): string[] {
  const messages: string[] = [];
  const differs = (a: number[], b: number[]) => a.length !== b.length || a.some((v, i) => Math.abs(v - b[i]) > 1e-6);
  for (const key of ['mean', 'std'] as const) {
    const given = recipe.input[key];
    if (given && differs(given, manifest[key])) {
      messages.push(
        `recipe input.${key} [${given.join(', ')}] differs from the backbone's [${manifest[key].join(', ')}] ` +
          "(what its weights were trained with); using the recipe's",
      );
    }
  }
  const size = recipe.input.size;
  if (size !== null && manifest.inputSize !== null && size !== manifest.inputSize) {
    messages.push(
      `recipe input.size ${size} differs from the backbone's recommended ${manifest.inputSize} px; using the recipe's`,
    );
  }
  return messages;
}

/** TrainOptions for a recipe and a resolved input. `file` prefixes errors. */
export function trainOptionsOf(recipe: FinetuneRecipe, input: InputSpec, file = 'recipe'): TrainOptions {
  const { size, channels, mean, std } = input;
  try {
    const augment = recipe.augment.train;
    let trainView: PipelineSpec;
    if (typeof augment === 'string') {
      if (!(LABELED_VIEW_NAMES as readonly string[]).includes(augment)) {
        throw new SchemaError(
          'recipe.augment.train',
          `Expected one of ${LABELED_VIEW_NAMES.map((n) => `"${n}"`).join(', ')} or a list of augmentation steps but received "${augment}" (string)`,
        );
      }
      trainView = labeledView(augment as LabeledViewName, input);
    } else trainView = checkView(augment, 'recipe.augment.train', channels);
    const fm = recipe.fixmatch;
    return {
      stages: recipe.stages.map((st) => ({ epochs: st.epochs, trainable: st.trainable.slice() })),
      batchSize: recipe.train.batchSize,
      stepsPerEpoch: recipe.train.stepsPerEpoch ?? undefined,
      optimizer: structuredClone(recipe.train.optimizer),
      backboneLrMultiplier: recipe.train.backboneLrMultiplier,
      schedule: structuredClone(recipe.train.schedule),
      gradClipNorm: recipe.train.gradClipNorm,
      emaDecay: recipe.train.emaDecay,
      divergence: { ...recipe.train.divergence },
      checkpoints: { everyEpochs: recipe.train.checkpointEveryEpochs, keep: recipe.train.keepCheckpoints },
      loss: { ...recipe.loss },
      classWeighting: recipe.balance.classWeights,
      effectiveNumberBeta: recipe.balance.beta,
      sampler: recipe.balance.sampler,
      trainView,
      fixmatch: fm.enabled
        ? {
            threshold: fm.threshold,
            ratio: fm.ratio,
            weight: fm.weight,
            warmupEpochs: fm.warmupEpochs,
            thresholdSchedule: fm.thresholdSchedule,
            distributionAlignment: fm.distributionAlignment,
            emaMomentum: fm.emaMomentum,
            weakView: fm.weakView
              ? checkView(fm.weakView, 'recipe.fixmatch.weakView', channels)
              : weakView(size, mean, std),
            strongView: fm.strongView
              ? checkView(fm.strongView, 'recipe.fixmatch.strongView', channels)
              : strongView(size, mean, std),
          }
        : undefined,
      auxiliary: auxiliaryOf(recipe.auxiliary, input),
      probe: recipe.probe.epochs > 0 ? { ...recipe.probe } : undefined,
      seed: recipe.seed,
      compile: recipe.train.compile,
      precision: recipe.train.precision,
    };
  } catch (e) {
    if (e instanceof SchemaError && file !== 'recipe') throw new RecipeError(file, e.message, e.keyPath);
    throw e;
  }
}

/** What to use instead, for the tasks an auxiliary loss cannot run. */
const AUXILIARY_TASKS = 'use rotation, contrastive, simsiam, barlow-twins or vicreg';

/** The auxiliary pretext task of a recipe, resolved (undefined without `auxiliary.task` or at weight 0). */
function auxiliaryOf(aux: FinetuneRecipe['auxiliary'], input: InputSpec): AuxiliaryTask | undefined {
  if (!aux.task || aux.weight === 0) return undefined;
  let task: AnyPretextTask;
  try {
    task = getTask(aux.task);
  } catch (e) {
    throw new SchemaError('recipe.auxiliary.task', (e as Error).message);
  }
  if (task.state) {
    throw new SchemaError(
      'recipe.auxiliary.task',
      `"${aux.task}" keeps state across steps (a momentum target or buffers), which finetuning does not run; ${AUXILIARY_TASKS}`,
    );
  }
  let options: object;
  try {
    options = task.validate(aux.options ?? {});
  } catch (e) {
    if (e instanceof UsageError) throw new SchemaError('recipe.auxiliary.options', e.message);
    throw e;
  }
  const views = task.views(options, input);
  views.forEach((view, i) => {
    checkView(view, `recipe.auxiliary (${aux.task}'s view ${i + 1})`, input.channels);
    // The steps' images are tensors already; a view the loader must make (jigsaw's tiles) cannot run on them.
    if (view.some((step) => step.op === 'jigsaw')) {
      throw new SchemaError(
        'recipe.auxiliary.task',
        `"${aux.task}" needs its tiles made by the data loader, which finetuning steps do not run; ${AUXILIARY_TASKS}`,
      );
    }
  });
  return { task, options, views, weight: aux.weight, images: aux.images };
}
