/**
 * What `selfsup embed` reads: a model (a backbone export folder, or a run folder
 * that holds one) and images (a folder, class folders, a scan manifest, a CSV or
 * Arrow label table, or an IDX file).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { createBackbone } from '../backbones/registry.js';
import type { Backbone } from '../backbones/types.js';
import { classFolderDataset, folderDataset, manifestDataset } from '../data/datasets/folder.js';
import { idxDataset } from '../data/datasets/idx.js';
import { labelTableDataset } from '../data/datasets/label-table.js';
import type { ImageSource } from '../data/types.js';
import { type BackboneManifest, MANIFEST_FILE, readManifest } from '../export/manifest.js';
import { readSafetensors } from '../export/safetensors.js';
import { loadStateDict } from '../export/torchvision.js';
import { readArrowTable } from '../util/arrow.js';
import { InputError } from '../util/errors.js';
import type { EmbedPreprocess } from './embed-images.js';

export interface LoadedModel {
  backbone: Backbone;
  preprocess: EmbedPreprocess;
  manifest: BackboneManifest;
  /** The export folder the weights came from. */
  dir: string;
}

/**
 * Finds the backbone export for `location`: the folder itself when it holds a
 * manifest.json, else the newest subfolder (one level down, then two: a run's
 * `backbone/` or `export/...`) that does.
 */
export function findBackboneExport(location: string): string {
  if (!existsSync(location))
    throw new InputError(location, 'does not exist (expected a run folder or a backbone export)');
  if (!statSync(location).isDirectory()) {
    throw new InputError(location, 'is a file; pass the folder that holds manifest.json (a run or a backbone export)');
  }
  if (existsSync(path.join(location, MANIFEST_FILE))) return location;
  const candidates: string[] = [];
  const visit = (dir: string, depth: number) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (!entry.isDirectory() || entry.name.startsWith('.')) continue;
      const sub = path.join(dir, entry.name);
      if (existsSync(path.join(sub, MANIFEST_FILE))) candidates.push(sub);
      else if (depth < 2) visit(sub, depth + 1);
    }
  };
  visit(location, 1);
  const withWeights = candidates.filter((dir) => hasSafetensors(dir));
  if (withWeights.length === 0) {
    throw new InputError(
      location,
      'holds no backbone export (no manifest.json with safetensors weights here or below); ' +
        'finish a run with `selfsup pretrain` or make one with `selfsup export <run> --format safetensors`',
    );
  }
  withWeights.sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  return withWeights[0];
}

function hasSafetensors(dir: string): boolean {
  return readdirSync(dir).some((f) => f.endsWith('.safetensors'));
}

/** Default input side when a manifest does not record one: 32 px for the small stem, 224 px otherwise. */
export function defaultInputSize(manifest: BackboneManifest): number {
  return manifest.inputSize ?? (manifest.stem === 'small' ? 32 : 224);
}

/** Builds the backbone of an export folder (or a run holding one) and loads its safetensors weights. */
export function loadModelForEmbedding(location: string, inputSize?: number): LoadedModel {
  const dir = findBackboneExport(location);
  const manifestFile = path.join(dir, MANIFEST_FILE);
  const manifest = readManifest(manifestFile);
  const weightsName =
    Object.values(manifest.files).find((f) => f.endsWith('.safetensors')) ??
    readdirSync(dir).find((f) => f.endsWith('.safetensors'));
  if (!weightsName) throw new InputError(manifestFile, 'lists no .safetensors weights file');
  const weightsFile = path.join(dir, weightsName);
  const backbone = createBackbone(manifest.architecture, {
    inputChannels: manifest.inputChannels,
    widthMultiplier: manifest.widthMultiplier,
    stem: manifest.stem,
    init: 'none',
  });
  try {
    loadStateDict(backbone, readSafetensors(weightsFile), weightsFile);
  } catch (e) {
    backbone.dispose();
    throw e;
  }
  return {
    backbone,
    dir,
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

function classNamesNear(file: string): string[] | undefined {
  for (const dir of [path.dirname(file), path.dirname(path.dirname(file))]) {
    const candidate = path.join(dir, 'classes.txt');
    if (existsSync(candidate)) {
      const names = readFileSync(candidate, 'utf8')
        .split(/\r?\n/)
        .map((l) => l.trim())
        .filter(Boolean);
      if (names.length > 0) return names;
    }
  }
  return undefined;
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
