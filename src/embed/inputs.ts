/**
 * The model `selfsup embed` reads: a backbone export folder, a run folder that
 * holds one, a torchvision .safetensors file or a tfjs model.json. (Images come
 * from the data layer's `openImageSource`.)
 */
import type { Backbone } from '../backbones/types.js';
import type { InputSpec } from '../data/types.js';
import { loadBackbone } from '../export/backbone-store.js';
import type { BackboneManifest } from '../export/manifest.js';

export interface LoadedModel {
  backbone: Backbone;
  /** The input the backbone expects (its manifest's size, channels, mean, std). */
  preprocess: InputSpec;
  manifest: BackboneManifest;
  /** The weights file the backbone came from. */
  weightsFile: string;
}

/** Default input side when a manifest does not record one: 32 px for the small stem, 224 px otherwise. */
export function defaultInputSize(manifest: BackboneManifest): number {
  return manifest.inputSize ?? (manifest.stem === 'small' ? 32 : 224);
}

/**
 * Loads the backbone of a run folder, a backbone export folder, a torchvision
 * `.safetensors` file or a tfjs `model.json` (via the export layer's
 * `loadBackbone`), with the preprocessing its manifest records.
 */
export async function loadModelForEmbedding(location: string, inputSize?: number): Promise<LoadedModel> {
  const loaded = await loadBackbone(location);
  const { manifest } = loaded;
  return {
    backbone: loaded.backbone,
    weightsFile: loaded.weightsFile,
    manifest,
    preprocess: {
      size: inputSize ?? defaultInputSize(manifest),
      channels: manifest.inputChannels,
      mean: manifest.mean,
      std: manifest.std,
    },
  };
}
