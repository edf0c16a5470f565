/**
 * What `selfsup embed` reads: a model (a backbone export folder, or a run folder
 * that holds one) and images (a folder, class folders, a scan manifest, a CSV or
 * Arrow label table, or an IDX file).
 */
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import type { Backbone } from '../backbones/types.js';
import { classFolderDataset, folderDataset, manifestDataset } from '../data/datasets/folder.js';
import { classNamesNear, idxDataset } from '../data/datasets/idx.js';
import { labelTableDataset } from '../data/datasets/label-table.js';
import type { ImageSource, InputSpec } from '../data/types.js';
import { loadBackbone } from '../export/backbone-store.js';
import type { BackboneManifest } from '../export/manifest.js';
import { readArrowTable } from '../util/arrow.js';
import { InputError } from '../util/errors.js';

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

export interface OpenImagesOptions {
  /** Treat the subfolders of a data folder as classes (labels for the map colours). */
  classFolders?: boolean;
  /** An IDX labels file for an IDX images file (default: the sibling `*labels-idx1*` file, when there is one). */
  labels?: string;
  /** Class names for IDX labels (default: `classes.txt` next to or above the IDX file, when there is one). */
  classNames?: string[];
}

const IDX_PATTERN = /(idx\d-ubyte|\.idx\d?)(\.gz)?$/i;

/** The labels file that usually sits beside an IDX images file (`train-images-idx3-ubyte` -> `train-labels-idx1-ubyte`). */
export function siblingIdxLabels(imagesFile: string): string | undefined {
  const base = path.basename(imagesFile);
  const guess = path.join(path.dirname(imagesFile), base.replace('images', 'labels').replace('idx3', 'idx1'));
  return guess !== imagesFile && existsSync(guess) ? guess : undefined;
}

/**
 * Opens images for embedding. `data` is a folder (recursive; `classFolders` for
 * dir/<class>/<image>), a scan manifest (`.arrow` with a status column), a label
 * table (`.csv`, or `.arrow` with path and label columns), or an IDX images file.
 */
export async function openImagesForEmbedding(data: string, options: OpenImagesOptions = {}): Promise<ImageSource> {
  if (!existsSync(data))
    throw new InputError(data, 'does not exist (expected a folder, manifest.arrow, labels .csv/.arrow or an IDX file)');
  if (statSync(data).isDirectory()) {
    return options.classFolders ? classFolderDataset(data) : folderDataset(data);
  }
  const lower = data.toLowerCase();
  if (IDX_PATTERN.test(lower)) {
    const labels = options.labels ?? siblingIdxLabels(data);
    return idxDataset(data, labels, labels ? (options.classNames ?? classNamesNear(data)) : undefined);
  }
  if (lower.endsWith('.csv')) return labelTableDataset(data);
  if (lower.endsWith('.arrow') || lower.endsWith('.feather') || lower.endsWith('.ipc')) {
    const table = readArrowTable(data);
    return table.getChild('status') ? manifestDataset(data) : labelTableDataset(data);
  }
  throw new InputError(
    data,
    'is not a folder, a manifest or label table (.arrow, .csv) or an IDX file (*-idx3-ubyte[.gz])',
  );
}
