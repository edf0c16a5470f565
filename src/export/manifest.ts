/**
 * `manifest.json`, written beside every export: what network it is, how to feed
 * it (input size, mean/std, channel order), and where it came from (pretext task,
 * data fingerprint, selfsup version).
 */
import type { BackboneConfig, ResNetArch, Stem } from '../backbones/types.js';
import { IMAGENET_MEAN, IMAGENET_STD } from '../data/augment/presets.js';
import { writeFileAtomic } from '../util/atomic.js';
import { InputError, invalidOption } from '../util/errors.js';
import { readRegularTextFile } from '../util/files.js';
import { normalizationProblem } from '../util/finite.js';
import { VERSION } from '../version.js';

export const MANIFEST_FILE = 'manifest.json';

/** What a caller knows about the weights beyond the architecture. All optional. */
export interface ManifestExtras {
  /** Square input side the backbone was trained at (e.g. 32, 224). */
  inputSize?: number;
  /** Per-channel mean/std on [0, 1] pixels. Default ImageNet's for 3 channels, 0.5/0.5 for 1. */
  mean?: number[];
  std?: number[];
  /** Channel order of the input. Default `RGB` for 3 channels, `L` for 1. */
  channelOrder?: 'RGB' | 'BGR' | 'L';
  /** Pretext task id (`rotation`, `simclr`, ...), or `imported` / `random-init`. */
  pretextTask?: string;
  /** Fingerprint of the training data (e.g. a hash of the scan manifest). */
  dataFingerprint?: string;
  /** Free-form provenance (a run id, a source file). */
  source?: string;
  /** Anything else worth keeping; stored as is. */
  notes?: Record<string, unknown>;
}

export interface BackboneManifest {
  format: 'selfsup-backbone';
  formatVersion: 1;
  architecture: ResNetArch;
  stem: Stem;
  inputChannels: 1 | 3;
  widthMultiplier: number;
  featureDim: number;
  inputSize: number | null;
  mean: number[];
  std: number[];
  channelOrder: 'RGB' | 'BGR' | 'L';
  pretextTask: string | null;
  dataFingerprint: string | null;
  source: string | null;
  selfsupVersion: string;
  createdAt: string;
  /** torchvision's BatchNorm `num_batches_tracked`. */
  numBatchesTracked: number;
  /** Files of this export, relative to the manifest (e.g. `{ weights: 'backbone.safetensors' }`). */
  files: Record<string, string>;
  /** Number of classes of an `fc` layer stored with the weights, if any. */
  fcClasses?: number;
  notes?: Record<string, unknown>;
}

/** Builds a manifest from a backbone's config and the caller's extras. */
export function buildManifest(
  config: BackboneConfig,
  featureDim: number,
  files: Record<string, string>,
  extras: ManifestExtras = {},
  numBatchesTracked = 0,
): BackboneManifest {
  const gray = config.inputChannels === 1;
  const mean = extras.mean ?? (gray ? [0.5] : IMAGENET_MEAN);
  const std = extras.std ?? (gray ? [0.5] : IMAGENET_STD);
  const problem = normalizationProblem(mean, std, config.inputChannels);
  if (problem) throw invalidOption(problem.key, problem.expected, problem.received);
  return {
    format: 'selfsup-backbone',
    formatVersion: 1,
    architecture: config.arch,
    stem: config.stem,
    inputChannels: config.inputChannels,
    widthMultiplier: config.widthMultiplier,
    featureDim,
    inputSize: extras.inputSize ?? null,
    mean,
    std,
    channelOrder: extras.channelOrder ?? (gray ? 'L' : 'RGB'),
    pretextTask: extras.pretextTask ?? null,
    dataFingerprint: extras.dataFingerprint ?? null,
    source: extras.source ?? null,
    selfsupVersion: VERSION,
    createdAt: new Date().toISOString(),
    numBatchesTracked,
    files,
    ...(extras.notes ? { notes: extras.notes } : {}),
  };
}

/** The extras a manifest carries (to pass on when re-exporting). */
export function manifestExtras(manifest: BackboneManifest): ManifestExtras {
  return {
    inputSize: manifest.inputSize ?? undefined,
    mean: manifest.mean,
    std: manifest.std,
    channelOrder: manifest.channelOrder,
    pretextTask: manifest.pretextTask ?? undefined,
    dataFingerprint: manifest.dataFingerprint ?? undefined,
    source: manifest.source ?? undefined,
    notes: manifest.notes,
  };
}

/** safetensors `__metadata__` (string values only) for a manifest; `format: pt` as torch files carry. */
export function manifestToSafetensorsMetadata(manifest: BackboneManifest): Record<string, string> {
  return {
    format: 'pt',
    producer: `selfsup ${manifest.selfsupVersion}`,
    arch: manifest.architecture,
    stem: manifest.stem,
    input_channels: String(manifest.inputChannels),
    width_multiplier: String(manifest.widthMultiplier),
    input_size: manifest.inputSize === null ? '' : String(manifest.inputSize),
    mean: JSON.stringify(manifest.mean),
    std: JSON.stringify(manifest.std),
    channel_order: manifest.channelOrder,
    pretext_task: manifest.pretextTask ?? '',
    data_fingerprint: manifest.dataFingerprint ?? '',
  };
}

/** Extras recovered from a safetensors `__metadata__` written by selfsup (or anyone using the same keys). */
export function safetensorsMetadataToExtras(metadata: Record<string, string>): ManifestExtras {
  const parseList = (text: string | undefined) => {
    if (!text) return undefined;
    try {
      const list = JSON.parse(text) as unknown;
      return Array.isArray(list) && list.every((v) => typeof v === 'number') ? (list as number[]) : undefined;
    } catch {
      return undefined;
    }
  };
  const size = Number(metadata.input_size);
  const order = metadata.channel_order;
  return {
    inputSize: metadata.input_size && Number.isInteger(size) && size > 0 ? size : undefined,
    mean: parseList(metadata.mean),
    std: parseList(metadata.std),
    channelOrder: order === 'RGB' || order === 'BGR' || order === 'L' ? order : undefined,
    pretextTask: metadata.pretext_task || undefined,
    dataFingerprint: metadata.data_fingerprint || undefined,
  };
}

export async function writeManifest(file: string, manifest: BackboneManifest): Promise<void> {
  await writeFileAtomic(file, `${JSON.stringify(manifest, null, 2)}\n`);
}

const ARCHS: readonly string[] = ['resnet18', 'resnet34', 'resnet50'];

/** Reads and checks a manifest.json (errors name the file and the bad key). */
export function readManifest(file: string): BackboneManifest {
  let parsed: unknown;
  const text = readRegularTextFile(file, { maxBytes: 16 * 1024 * 1024, what: 'manifest' });
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new InputError(file, `cannot read the manifest (${(e as Error).message})`);
  }
  return checkManifest(parsed, file);
}

/**
 * Checks a manifest read from `file` (a manifest.json, or the copy a tfjs
 * model.json carries): architecture, stem, channels, width, and finite
 * preprocessing (`mean`, `std` > 0, `inputSize`), before any work uses them.
 */
export function checkManifest(parsed: unknown, file: string): BackboneManifest {
  const m = parsed as Partial<BackboneManifest>;
  if (!m || typeof m !== 'object') throw new InputError(file, 'the manifest is not a JSON object');
  const bad = (key: string, expected: string, value: unknown) =>
    new InputError(file, `Expected ${expected} for "${key}" but received ${JSON.stringify(value)}`);
  if (!ARCHS.includes(m.architecture as string)) throw bad('architecture', ARCHS.join(' | '), m.architecture);
  if (m.stem !== 'imagenet' && m.stem !== 'small') throw bad('stem', 'imagenet | small', m.stem);
  if (m.inputChannels !== 1 && m.inputChannels !== 3) throw bad('inputChannels', '1 | 3', m.inputChannels);
  if (typeof m.widthMultiplier !== 'number' || !(m.widthMultiplier > 0)) {
    throw bad('widthMultiplier', 'a positive number', m.widthMultiplier);
  }
  const problem = normalizationProblem(m.mean, m.std, m.inputChannels);
  if (problem) throw bad(problem.key, problem.expected, problem.received);
  if (m.inputSize !== null && m.inputSize !== undefined && !(Number.isInteger(m.inputSize) && m.inputSize > 0)) {
    throw bad('inputSize', 'null or a positive integer', m.inputSize);
  }
  return m as BackboneManifest;
}
