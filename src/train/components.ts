/**
 * What the training loop needs from the other layers, as small function types:
 * the task registry, the backbone factory, the data layer (open a source, make a
 * loader) and the backbone export. `defaultComponents()` wires the library's
 * own; a program (or a test) may pass its own to `pretrain`.
 */
import { getTask } from '../../pretext-tasks/registry.js';
import { createBackbone } from '../backbones/registry.js';
import type { Backbone } from '../backbones/types.js';
import { createLoader } from '../data/loader.js';
import { openImageSource } from '../data/open.js';
import type { Batch, ImageSource, LoaderOptions, LoaderStats } from '../data/types.js';
import { loadWeightsInto, saveBackbone } from '../export/backbone-store.js';
import type { BackboneManifest, ManifestExtras } from '../export/manifest.js';
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
  /**
   * Opens a folder, manifest, label table or IDX file as an image source;
   * `labelled` (the kNN validation data) reads a folder as class folders.
   */
  openSource(dataPath: string, options?: { labelled?: boolean }): Promise<ImageSource>;
  createLoader(source: ImageSource, options: LoaderOptions): BatchLoader;
  /** Exports the final backbone to `dir` (atomically); when absent the loop writes its own tensors format. */
  saveBackbone?(backbone: Backbone, dir: string, metadata: ManifestExtras): Promise<void>;
  /** Copies existing weights (recipe.init.weights) into the new backbone; returns their manifest. */
  loadInitWeights?(backbone: Backbone, weights: string): Promise<BackboneManifest>;
}

/** The library's own task registry, ResNet factory, data loader and backbone export. */
export async function defaultComponents(): Promise<TrainComponents> {
  return {
    getTask,
    createBackbone: (config, rng) =>
      createBackbone(config.arch, {
        inputChannels: config.inputChannels,
        widthMultiplier: config.widthMultiplier,
        stem: config.stem,
        rng,
      }),
    openSource: (dataPath, options) => openImageSource(dataPath, { needLabels: options?.labelled === true }),
    createLoader,
    saveBackbone: async (backbone, dir, metadata) => {
      await saveBackbone(backbone, dir, metadata);
    },
    loadInitWeights: loadWeightsInto,
  };
}
