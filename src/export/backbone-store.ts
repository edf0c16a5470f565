/**
 * The backbone directory (`backbone.safetensors` + `manifest.json`) and the one
 * loader that accepts everything a user may hand us: a backbone directory, a run
 * directory, a torchvision `.safetensors` file, or a tfjs `model.json`.
 */
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import path from 'node:path';
import { createBackbone, resolveBackboneConfig } from '../backbones/registry.js';
import type { Backbone, BackboneConfig, ResNetArch, Stem } from '../backbones/types.js';
import { writeDirAtomic, writeFileAtomic } from '../util/atomic.js';
import { InputError, UsageError } from '../util/errors.js';
import { checkOutputDir, checkOutputFile, type OutputDirOptions, writeOutputDir } from '../util/output-dir.js';
import {
  type BackboneManifest,
  buildManifest,
  checkManifest,
  MANIFEST_FILE,
  type ManifestExtras,
  manifestExtras,
  manifestToSafetensorsMetadata,
  readManifest,
  safetensorsMetadataToExtras,
  writeManifest,
} from './manifest.js';
import { backboneToOnnx, ONNX_MODEL_FILE, type OnnxGraphOptions } from './onnx.js';
import { isTorchCheckpointPath } from './pytorch/checkpoint.js';
import { readTorchBackbone } from './pytorch/read-backbone.js';
import { encodeSafetensors, readSafetensors } from './safetensors.js';
import {
  backboneToLayersModel,
  layersModelToBackbone,
  readLayersModel,
  TFJS_MODEL_FILE,
  TFJS_WEIGHTS_FILE,
  writeLayersModel,
} from './tfjs-model.js';
import { backboneToStateDict, type DenseWeights, inferConfig, loadStateDict } from './torchvision.js';

export const BACKBONE_WEIGHTS_FILE = 'backbone.safetensors';

/**
 * Where a run keeps its backbone, in the order they are tried (then
 * `checkpoints/<name>/backbone` when `checkpoints/last` is a file naming `<name>`).
 */
export const RUN_BACKBONE_DIRS = ['backbone', path.join('checkpoints', 'last', 'backbone')];

export interface SaveBackboneOptions {
  /** Also store a classifier as torchvision's `fc.weight` / `fc.bias`. */
  fc?: DenseWeights;
  /** Weight dtype (default F32). */
  dtype?: 'F32' | 'F16' | 'BF16';
  /** Write as a user-facing output folder (marker, --overwrite rules of util/output-dir.ts) instead of replacing the folder. */
  output?: OutputDirOptions;
}

/** Replaces `dir` atomically, or writes it as an output folder when `output` is given. */
function writeBackboneDir(
  dir: string,
  output: OutputDirOptions | undefined,
  fill: (tmp: string) => Promise<void>,
): Promise<unknown> {
  return output ? writeOutputDir(dir, output, fill) : writeDirAtomic(dir, fill);
}

function numBatchesTracked(backbone: Backbone): number {
  return (backbone as { numBatchesTracked?: number }).numBatchesTracked ?? 0;
}

/** `backbone.safetensors` bytes (torchvision names/layouts, `__metadata__` from the manifest). */
function safetensorsBytes(backbone: Backbone, manifest: BackboneManifest, options: SaveBackboneOptions): Uint8Array {
  return encodeSafetensors(
    backboneToStateDict(backbone, { dtype: options.dtype, fc: options.fc }),
    manifestToSafetensorsMetadata(manifest),
  );
}

/** The manifest of `backbone` written with `files`. */
function manifestFor(
  backbone: Backbone,
  files: Parameters<typeof buildManifest>[2],
  extras: ManifestExtras,
): BackboneManifest {
  return buildManifest(backbone.config, backbone.featureDim, files, extras, numBatchesTracked(backbone));
}

/**
 * Writes one weights file and the manifest: into the folder `out` as
 * `folder.file` + `manifest.json` (atomically, or as a user output folder with
 * `folder.output`), or, without `folder`, as the file `out` with
 * `<name>.manifest.json` beside it.
 */
async function writeWeightsWithManifest(
  out: string,
  folder: { file: string; output?: OutputDirOptions } | undefined,
  bytes: Uint8Array,
  manifest: BackboneManifest,
): Promise<BackboneManifest> {
  if (!folder) {
    await writeFileAtomic(out, bytes);
    await writeManifest(manifestBeside(out), manifest);
    return manifest;
  }
  await writeBackboneDir(out, folder.output, async (tmp) => {
    await writeFileAtomic(path.join(tmp, folder.file), bytes);
    await writeManifest(path.join(tmp, MANIFEST_FILE), manifest);
  });
  return manifest;
}

/** How a backbone writer is called: the backbone, where it goes, the manifest's extras, the writer's options. */
export type BackboneWriter<Options> = (
  backbone: Backbone,
  out: string,
  extras?: ManifestExtras,
  options?: Options,
) => Promise<BackboneManifest>;

/** The torchvision-named safetensors of `backbone` (with `fc` when given), as a folder or (`single`) a lone file. */
async function saveSafetensors(
  backbone: Backbone,
  out: string,
  single: boolean,
  extras: ManifestExtras,
  options: SaveBackboneOptions,
): Promise<BackboneManifest> {
  const manifest = manifestFor(backbone, { weights: single ? path.basename(out) : BACKBONE_WEIGHTS_FILE }, extras);
  if (options.fc) manifest.fcClasses = options.fc.outputDim;
  const folder = single ? undefined : { file: BACKBONE_WEIGHTS_FILE, output: options.output };
  return writeWeightsWithManifest(out, folder, safetensorsBytes(backbone, manifest, options), manifest);
}

/**
 * Writes a backbone directory atomically: `<dir>/backbone.safetensors` (torchvision
 * names; loads into torchvision with `load_state_dict(strict=False)`) and
 * `<dir>/manifest.json`. Returns the manifest.
 */
export const saveBackbone: BackboneWriter<SaveBackboneOptions> = (backbone, dir, extras = {}, options = {}) =>
  saveSafetensors(backbone, dir, false, extras, options);

/** Writes a single torchvision-style `.safetensors` file plus `<name>.manifest.json` beside it. */
export const saveBackboneSafetensorsFile: BackboneWriter<SaveBackboneOptions> = (
  backbone,
  file,
  extras = {},
  options = {},
) => saveSafetensors(backbone, file, true, extras, options);

/** Writes the backbone as a tfjs LayersModel directory (`model.json`, `weights.bin`, `manifest.json`). */
export async function saveBackboneTfjs(
  backbone: Backbone,
  dir: string,
  extras: ManifestExtras = {},
  options: Pick<SaveBackboneOptions, 'output'> = {},
): Promise<BackboneManifest> {
  const manifest = manifestFor(backbone, { model: TFJS_MODEL_FILE, weights: TFJS_WEIGHTS_FILE }, extras);
  const model = backboneToLayersModel(backbone, manifest.inputSize);
  try {
    await writeBackboneDir(dir, options.output, async (tmp) => {
      await writeLayersModel(model, tmp, { selfsup: manifest });
      await writeManifest(path.join(tmp, MANIFEST_FILE), manifest);
    });
  } finally {
    model.dispose();
  }
  return manifest;
}

export interface SaveOnnxOptions extends Omit<OnnxGraphOptions, 'mean' | 'std' | 'inputSize'> {
  /** Write a directory as a user-facing output folder (marker, --overwrite rules of util/output-dir.ts) instead of replacing it. */
  output?: OutputDirOptions;
}

/**
 * Writes the backbone (and an optional head) as ONNX: into a directory
 * (`model.onnx` + `manifest.json`), or to a file ending in `.onnx` with
 * `<name>.manifest.json` beside it. Input size and mean/std come from `extras`
 * (the manifest's); see src/export/onnx.ts for the graph.
 */
export async function saveBackboneOnnx(
  backbone: Backbone,
  out: string,
  extras: ManifestExtras = {},
  options: SaveOnnxOptions = {},
): Promise<BackboneManifest> {
  const single = out.endsWith('.onnx');
  const manifest = manifestFor(backbone, { model: single ? path.basename(out) : ONNX_MODEL_FILE }, extras);
  for (const block of options.head?.blocks ?? []) if ('linear' in block) manifest.fcClasses = block.linear;
  const { output, ...graphOptions } = options;
  const bytes = backboneToOnnx(backbone, {
    ...graphOptions,
    mean: manifest.mean,
    std: manifest.std,
    inputSize: manifest.inputSize,
    metadata: { selfsup_manifest: JSON.stringify(manifest), ...options.metadata },
  });
  return writeWeightsWithManifest(out, single ? undefined : { file: ONNX_MODEL_FILE, output }, bytes, manifest);
}

export interface LoadBackboneOptions {
  /** Required for a foreign .safetensors file whose keys do not tell (they usually do); checked otherwise. */
  arch?: ResNetArch | string;
  stem?: Stem;
  inputChannels?: 1 | 3;
  widthMultiplier?: number;
  /** Which backbone of a PyTorch checkpoint that holds several (also `file.pth#key`). */
  key?: string;
}

export interface LoadedBackbone {
  backbone: Backbone;
  /** The stored manifest, or one built from what the file says. */
  manifest: BackboneManifest;
  /** A torchvision `fc` found beside the backbone weights (tfjs layout [in, out]). */
  fc?: DenseWeights;
  /** The file the weights came from and its format. */
  weightsFile: string;
  format: 'backbone-dir' | 'safetensors' | 'tfjs' | 'pytorch';
  /** For a PyTorch checkpoint: where the backbone was, the other backbones and the keys left out. */
  found?: { backboneKey: string; otherBackbones: string[]; ignored: string[]; container: 'zip' | 'legacy' };
}

export type BackbonePathKind = 'safetensors' | 'tfjs' | 'backbone-dir' | 'pytorch';

/** True when the file's first bytes are a zip header or a pickle (a torch.save file whatever its name). */
function sniffTorch(file: string): boolean {
  const fd = openSync(file, 'r');
  try {
    const head = Buffer.alloc(4);
    const n = readSync(fd, head, 0, 4, 0);
    return (n >= 4 && head.readUInt32LE(0) === 0x04034b50) || (n >= 2 && head[0] === 0x80 && head[1] <= 5);
  } finally {
    closeSync(fd);
  }
}

/**
 * Finds what `target` is: a weights file (.safetensors, a PyTorch checkpoint, a tfjs
 * model.json), a backbone directory, a tfjs directory, or a run directory. A
 * checkpoint path may end in `#key` to pick one of several backbones.
 */
export function resolveBackbonePath(target: string): { kind: BackbonePathKind; file: string; key?: string } {
  const hash = target.lastIndexOf('#');
  if (!existsSync(target) && hash > 0 && existsSync(target.slice(0, hash))) {
    const resolved = resolveBackbonePath(target.slice(0, hash));
    if (resolved.kind !== 'pytorch') throw new InputError(target, '"#key" only applies to PyTorch checkpoints');
    return { ...resolved, key: target.slice(hash + 1) };
  }
  if (!existsSync(target)) throw new InputError(target, 'no such file or directory');
  if (statSync(target).isFile()) {
    if (target.endsWith('.json')) return { kind: 'tfjs', file: target };
    if (target.endsWith('.safetensors')) return { kind: 'safetensors', file: target };
    if (isTorchCheckpointPath(target) || sniffTorch(target)) return { kind: 'pytorch', file: target };
    return { kind: 'safetensors', file: target };
  }
  const candidates = ['.', ...RUN_BACKBONE_DIRS];
  // src/train writes `checkpoints/last` as a file naming the newest checkpoint directory.
  const pointer = path.join(target, 'checkpoints', 'last');
  if (existsSync(pointer) && statSync(pointer).isFile()) {
    const name = readFileSync(pointer, 'utf8').trim();
    if (name && !name.includes('..')) candidates.push(path.join('checkpoints', name, 'backbone'));
  }
  for (const relative of candidates) {
    const dir = path.join(target, relative);
    if (existsSync(path.join(dir, BACKBONE_WEIGHTS_FILE))) {
      return { kind: 'backbone-dir', file: path.join(dir, BACKBONE_WEIGHTS_FILE) };
    }
    if (existsSync(path.join(dir, TFJS_MODEL_FILE))) return { kind: 'tfjs', file: path.join(dir, TFJS_MODEL_FILE) };
  }
  throw new InputError(
    target,
    `no backbone found: looked for ${BACKBONE_WEIGHTS_FILE} or ${TFJS_MODEL_FILE} in ${candidates
      .map((c) => (c === '.' ? 'the directory' : `${c}/`))
      .join(', ')}`,
  );
}

/** Merges what the file says with what the caller says; a contradiction is an error naming both. */
function mergeConfig(file: string, found: Partial<BackboneConfig>, options: LoadBackboneOptions): BackboneConfig {
  const pick = <K extends keyof BackboneConfig>(key: K, given: unknown): unknown => {
    const known = found[key];
    if (given !== undefined && known !== undefined && given !== known) {
      throw new InputError(file, `the weights are ${key} ${String(known)} but ${String(given)} was asked for`);
    }
    return given ?? known;
  };
  const arch = pick('arch', options.arch);
  if (arch === undefined) {
    throw new UsageError(
      `${file}: cannot tell the architecture from the keys; pass --arch (resnet18, resnet34, resnet50)`,
    );
  }
  return resolveBackboneConfig(String(arch), {
    stem: pick('stem', options.stem) as Stem | undefined,
    inputChannels: pick('inputChannels', options.inputChannels) as 1 | 3 | undefined,
    widthMultiplier: pick('widthMultiplier', options.widthMultiplier) as number | undefined,
  });
}

function configOfManifest(m: BackboneManifest): Partial<BackboneConfig> {
  return { arch: m.architecture, stem: m.stem, inputChannels: m.inputChannels, widthMultiplier: m.widthMultiplier };
}

/**
 * Loads a backbone from a backbone directory, a run directory (`<run>/backbone/`
 * or `<run>/checkpoints/last/backbone/`), a torchvision `.safetensors` file
 * (backbone only or with `fc`, which is returned separately), or a tfjs
 * `model.json`. The caller owns (and disposes) the returned backbone.
 */
export async function loadBackbone(target: string, options: LoadBackboneOptions = {}): Promise<LoadedBackbone> {
  const { kind, file, key } = resolveBackbonePath(target);
  if (kind === 'tfjs') {
    const { model, metadata } = await readLayersModel(file);
    try {
      const beside = path.join(path.dirname(file), MANIFEST_FILE);
      const stored =
        metadata.selfsup !== undefined
          ? checkManifest(metadata.selfsup, `${file} (userDefinedMetadata.selfsup)`)
          : existsSync(beside)
            ? readManifest(beside)
            : undefined;
      const config = mergeConfig(file, stored ? configOfManifest(stored) : {}, options);
      const backbone = createBackbone(config.arch, { ...config, init: 'none' });
      try {
        layersModelToBackbone(model, backbone, file);
      } catch (e) {
        backbone.dispose();
        throw e;
      }
      const manifest = stored ?? buildManifest(config, backbone.featureDim, { model: path.basename(file) });
      return { backbone, manifest, weightsFile: file, format: 'tfjs' };
    } finally {
      model.dispose();
    }
  }
  const torch = kind === 'pytorch' ? readTorchBackbone(file, options.key ?? key) : undefined;
  const contents = torch ?? readSafetensors(file);
  const besideManifest = path.join(path.dirname(file), MANIFEST_FILE);
  const stored = kind === 'backbone-dir' && existsSync(besideManifest) ? readManifest(besideManifest) : undefined;
  const inferred = inferConfig(contents);
  const found: Partial<BackboneConfig> = stored
    ? configOfManifest(stored)
    : {
        arch: inferred.arch,
        stem: inferred.stem,
        inputChannels:
          inferred.inputChannels === 1 || inferred.inputChannels === 3 ? inferred.inputChannels : undefined,
        widthMultiplier: inferred.widthMultiplier,
      };
  const config = mergeConfig(file, found, options);
  const backbone = createBackbone(config.arch, { ...config, init: 'none' });
  try {
    const { fc } = loadStateDict(backbone, contents, file);
    const manifest =
      stored ??
      buildManifest(
        config,
        backbone.featureDim,
        { weights: path.basename(file) },
        importedExtras(
          file,
          torch && torch.backboneKey !== '(top level)' ? `${file}#${torch.backboneKey}` : file,
          config,
          contents.metadata,
        ),
        (backbone as { numBatchesTracked?: number }).numBatchesTracked ?? 0,
      );
    const found = torch && {
      backboneKey: torch.backboneKey,
      otherBackbones: torch.otherBackbones,
      ignored: torch.ignored,
      container: torch.format,
    };
    return { backbone, manifest, fc, weightsFile: file, format: kind, ...(found ? { found } : {}) };
  } catch (e) {
    backbone.dispose();
    throw e;
  }
}

/**
 * Extras of a foreign or lone weights file: what its `__metadata__` says (mean/std
 * checked: one finite number per channel, std > 0), else `imported` from the file
 * with the preprocessing its weights were trained with as far as the file tells:
 * torchvision's (and timm's) ImageNet mean/std for 3 channels (buildManifest's
 * default), and the usual input size of the stem (224 px for the ImageNet stem,
 * 32 px for the small one).
 */
function importedExtras(
  file: string,
  source: string,
  config: BackboneConfig,
  metadata: Record<string, string>,
): ManifestExtras {
  const found = safetensorsMetadataToExtras(metadata);
  const channels = config.inputChannels;
  for (const key of ['mean', 'std'] as const) {
    const values = found[key];
    if (
      values &&
      (values.length !== channels || values.some((v) => !Number.isFinite(v) || (key === 'std' && v <= 0)))
    ) {
      throw new InputError(
        file,
        `Expected ${channels} ${key === 'std' ? 'positive ' : ''}finite number(s) for "__metadata__.${key}" but received ${JSON.stringify(values)}`,
      );
    }
  }
  return {
    ...found,
    inputSize: found.inputSize ?? recommendedInputSize(config.stem),
    source,
    pretextTask: found.pretextTask ?? 'imported',
  };
}

/** The input size a stem is usually trained at: 224 px (ImageNet stem), 32 px (small stem). */
export function recommendedInputSize(stem: Stem): number {
  return stem === 'imagenet' ? 224 : 32;
}

/**
 * Copies the weights at `weights` (anything loadBackbone accepts) into `backbone`,
 * whose architecture, stem, channels and width must match (an error names what
 * differs). Returns the manifest of the weights (their preprocessing, provenance).
 */
export async function loadWeightsInto(backbone: Backbone, weights: string): Promise<BackboneManifest> {
  const { arch, stem, inputChannels, widthMultiplier } = backbone.config;
  const loaded = await loadBackbone(weights, { arch, stem, inputChannels, widthMultiplier });
  try {
    const source = new Map(loaded.backbone.variables().map((v) => [v.name, v.variable]));
    for (const { name, variable } of backbone.variables()) {
      const from = source.get(name);
      if (!from || from.shape.join(',') !== variable.shape.join(',')) {
        throw new InputError(weights, `tensor "${name}" does not fit the backbone being trained`);
      }
      variable.assign(from);
    }
    (backbone as { numBatchesTracked?: number }).numBatchesTracked = numBatchesTracked(loaded.backbone);
    return loaded.manifest;
  } finally {
    loaded.backbone.dispose();
  }
}

export type ExportFormat = 'safetensors' | 'tfjs' | 'onnx';

/**
 * Loads whatever `source` is and writes it out: `safetensors` to a backbone
 * directory (or a single file when `out` ends in `.safetensors`), `tfjs` to a
 * LayersModel directory, `onnx` to a directory with `model.onnx` (or a single
 * file when `out` ends in `.onnx`; F16 stores float16 weights, BF16 is not
 * offered for ONNX). Manifest extras of the source are carried over.
 */
export async function exportBackbone(
  source: string,
  format: ExportFormat,
  out: string,
  options: LoadBackboneOptions & {
    dtype?: 'F32' | 'F16' | 'BF16';
    extras?: ManifestExtras;
    /** Replace an earlier export at `out` (only what selfsup wrote there). */
    overwrite?: boolean;
  } = {},
): Promise<BackboneManifest> {
  if (format === 'onnx' && options.dtype === 'BF16') {
    throw new UsageError('ONNX export stores F32 or F16 weights; BF16 is for safetensors only');
  }
  const inputs = [{ path: source, option: '<source>' }];
  const toFile =
    (format === 'safetensors' && out.endsWith('.safetensors')) || (format === 'onnx' && out.endsWith('.onnx'));
  const output: OutputDirOptions = {
    kind: format === 'tfjs' ? 'backbone-tfjs' : format === 'onnx' ? 'backbone-onnx' : 'backbone',
    overwrite: options.overwrite,
    inputs,
  };
  if (toFile) {
    checkOutputFile(out, {
      isOwn: format === 'onnx' ? isSelfsupOnnx : isSelfsupSafetensors,
      what: format === 'onnx' ? 'an .onnx export' : 'a .safetensors export',
      overwrite: options.overwrite,
      inputs,
    });
    checkOutputFile(manifestBeside(out), {
      isOwn: isBackboneManifestFile,
      what: 'a backbone manifest',
      overwrite: options.overwrite,
      inputs,
    });
  } else checkOutputDir(out, output);
  const loaded = await loadBackbone(source, options);
  try {
    const extras = { ...manifestExtras(loaded.manifest), ...options.extras };
    if (format === 'tfjs') return await saveBackboneTfjs(loaded.backbone, out, extras, { output });
    if (format === 'onnx') {
      return await saveBackboneOnnx(loaded.backbone, out, extras, {
        weights: options.dtype === 'F16' ? 'float16' : 'float32',
        output: toFile ? undefined : output,
      });
    }
    const saveOptions = { fc: loaded.fc, dtype: options.dtype };
    if (toFile) return await saveBackboneSafetensorsFile(loaded.backbone, out, extras, saveOptions);
    return await saveBackbone(loaded.backbone, out, extras, { ...saveOptions, output });
  } finally {
    loaded.backbone.dispose();
  }
}

/** The manifest written beside a lone `.safetensors` or `.onnx` export: `<name>.manifest.json`. */
export function manifestBeside(file: string): string {
  return `${file.replace(/\.(safetensors|onnx)$/, '')}.manifest.json`;
}

/**
 * True when `file` is an ONNX model selfsup wrote: its ModelProto starts with
 * `ir_version` and `opset_import`, then `producer_name` "selfsup" (reads 256 bytes).
 */
export function isSelfsupOnnx(file: string): boolean {
  let fd: number | undefined;
  try {
    fd = openSync(file, 'r');
    const head = Buffer.alloc(256);
    const read = readSync(fd, head, 0, head.length, 0);
    // Field 2 (producer_name), wire type 2, length 7, "selfsup".
    return head.subarray(0, read).includes(Buffer.from([0x12, 0x07, ...Buffer.from('selfsup')]));
  } catch {
    return false;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** True when `file` is a safetensors file whose `__metadata__` says selfsup wrote it (reads the header only). */
export function isSelfsupSafetensors(file: string): boolean {
  let fd: number | undefined;
  try {
    fd = openSync(file, 'r');
    const head = Buffer.alloc(8);
    if (readSync(fd, head, 0, 8, 0) !== 8) return false;
    const length = Number(head.readBigUInt64LE(0));
    if (length <= 0 || length > 16 * 1024 * 1024) return false;
    const header = Buffer.alloc(length);
    if (readSync(fd, header, 0, length, 8) !== length) return false;
    const producer = JSON.parse(header.toString('utf8'))?.__metadata__?.producer;
    return typeof producer === 'string' && producer.startsWith('selfsup');
  } catch {
    return false;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** True when `file` is a backbone manifest selfsup wrote (`format: selfsup-backbone`). */
export function isBackboneManifestFile(file: string): boolean {
  try {
    return JSON.parse(readFileSync(file, 'utf8'))?.format === 'selfsup-backbone';
  } catch {
    return false;
  }
}
