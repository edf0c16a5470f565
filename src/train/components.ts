/**
 * What the training loop needs from the other layers, as small function types:
 * the task registry, the backbone factory, the data layer (open a source, make a
 * loader) and the backbone export. `defaultComponents()` wires the library's
 * own; a program (or a test) may pass its own to `pretrain`.
 */
import type { Backbone } from '../backbones/types.js';
import type { Batch, ImageSource, LoaderOptions, LoaderStats } from '../data/types.js';
import type { TaskLookup } from '../recipes/pretrain-recipe.js';
import type { PretrainRecipe } from '../recipes/pretrain-schema.js';
import type { Rng } from '../util/rng.js';

/** Batches of one epoch, in order. `close()` stops workers early (e.g. on a stop). */
export interface BatchLoader extends AsyncIterable<Batch> {
  stats?(): LoaderStats;
  close?(): void | Promise<void>;
}

export interface TrainComponents {
  getTask: TaskLookup;
  createBackbone(config: PretrainRecipe['backbone'] & { inputChannels: 1 | 3 }, rng: Rng): Backbone;
  /** Opens a folder, manifest or IDX file as an image source. */
  openSource(dataPath: string): Promise<ImageSource>;
  createLoader(source: ImageSource, options: LoaderOptions): BatchLoader;
  /** Exports the final backbone to `dir`; when absent the loop writes its own tensors format. */
  saveBackbone?(backbone: Backbone, dir: string, metadata: Record<string, string>): Promise<void>;
}

// Module paths are held in variables so that this file compiles on its own.
const TASKS_MODULE = '../../pretext-tasks/registry.js';
const BACKBONES_MODULE = '../backbones/registry.js';
const DATA_MODULE = '../data/index.js';
const EXPORT_MODULE = '../export/index.js';

// biome-ignore lint/suspicious/noExplicitAny: modules resolved at run time
async function optionalImport(specifier: string): Promise<any> {
  try {
    return await import(specifier);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND') return undefined;
    throw e;
  }
}

function missing(what: string): never {
  throw new Error(`${what} is not available in this build of selfsup`);
}

/** The library's own task registry, ResNet factory, data loader and export. */
export async function defaultComponents(): Promise<TrainComponents> {
  const [tasks, backbones, data, exporter] = await Promise.all([
    optionalImport(TASKS_MODULE),
    optionalImport(BACKBONES_MODULE),
    optionalImport(DATA_MODULE),
    optionalImport(EXPORT_MODULE),
  ]);
  return {
    getTask: (id) => (tasks?.getTask ? tasks.getTask(id) : missing('the pretext-task registry')),
    createBackbone: (config, rng) =>
      backbones?.createBackbone
        ? backbones.createBackbone(config.arch, {
            inputChannels: config.inputChannels,
            widthMultiplier: config.widthMultiplier,
            stem: config.stem,
            rng,
          })
        : missing('the backbone registry'),
    openSource: async (dataPath) =>
      data?.openImageSource ? data.openImageSource(dataPath) : missing('the data layer (openImageSource)'),
    createLoader: (source, options) =>
      data?.createLoader ? data.createLoader(source, options) : missing('the data loader (createLoader)'),
    saveBackbone: exporter?.saveBackbone
      ? (backbone, dir, metadata) => exporter.saveBackbone(backbone, dir, { metadata })
      : undefined,
  };
}
