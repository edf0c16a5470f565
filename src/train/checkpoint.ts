/**
 * Checkpoints: a whole directory written atomically (temporary sibling, then
 * rename), so a crash leaves either the previous checkpoint or the complete new
 * one, never half of one. `checkpoints/last` names the newest complete one; it is
 * rewritten (atomically) only after the directory is in place.
 *
 * Layout of `checkpoints/ckpt-<globalStep>/`:
 * - `tensors.bin`   float32/int32 little-endian data of every variable, concatenated
 * - `tensors.json`  `{format, sha256, tensors: [{name, dtype, shape, offset, length}]}`; `sha256` is
 *                   the checksum of `tensors.bin`, checked on every load (a damaged file is an error)
 * - `state.json`    training position, optimizer host state, seed, reference loss
 * - `metrics.arrow` the metrics rows up to this checkpoint
 * - `backbone/`     the backbone export (when the loop has an exporter), so a
 *                   checkpoint's backbone can be exported before the run finishes
 */
import { createHash } from 'node:crypto';
import { existsSync, promises as fsp, lstatSync, readFileSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { writeDirAtomic, writeFileAtomic } from '../util/atomic.js';
import { InputError } from '../util/errors.js';
import { MetricsLog } from './metrics.js';
import type { OptimizerHostState } from './optimizers.js';

export const CHECKPOINT_FORMAT = 'selfsup-checkpoint/1';

export interface NamedTensorVariable {
  name: string;
  variable: tf.Variable;
}

/** Where training continues from, and what it needs to continue identically. */
export interface TrainingState {
  /** Epoch (0-based) of the next step to run. */
  epoch: number;
  /** Step inside that epoch of the next step to run (0 = epoch start). */
  step: number;
  /** Steps done so far. */
  globalStep: number;
  stepsPerEpoch: number;
  /** Run seed; every random stream is derived from it by (epoch, step) name. */
  seed: number;
  /** Loss of the run's first step (reference of the explosion check), or null. */
  referenceLoss: number | null;
  optimizer: { name: string } & OptimizerHostState;
  /** State of the root random stream (all per-step streams are derived by name from the seed). */
  rngState: object;
  /** Wall-clock time of the save. */
  savedAt: string;
  /** torchvision's BatchNorm `num_batches_tracked` of the backbone (absent in older checkpoints). */
  numBatchesTracked?: number;
}

interface TensorEntry {
  name: string;
  dtype: 'float32' | 'int32';
  shape: number[];
  offset: number;
  length: number;
}

/** Writes variables as `tensors.bin` + `tensors.json` into `dir` (not atomic by itself: use inside writeDirAtomic). */
export async function writeTensors(dir: string, variables: NamedTensorVariable[]): Promise<void> {
  const entries: TensorEntry[] = [];
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const { name, variable } of variables) {
    const dtype = variable.dtype === 'int32' ? 'int32' : 'float32';
    const values = (await variable.data()) as Float32Array | Int32Array;
    const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    entries.push({ name, dtype, shape: [...variable.shape], offset, length: bytes.byteLength });
    chunks.push(bytes);
    offset += bytes.byteLength;
  }
  const data = Buffer.concat(chunks);
  const sha256 = createHash('sha256').update(data).digest('hex');
  await fsp.writeFile(path.join(dir, 'tensors.bin'), data);
  await fsp.writeFile(
    path.join(dir, 'tensors.json'),
    `${JSON.stringify({ format: CHECKPOINT_FORMAT, sha256, tensors: entries }, null, 1)}\n`,
  );
}

/**
 * Assigns saved values to `variables` by name. Every variable must be present
 * with the same shape; errors name the file and the variable.
 */
export function readTensorsInto(dir: string, variables: NamedTensorVariable[]): void {
  const indexFile = path.join(dir, 'tensors.json');
  let index: { format: string; sha256?: string; tensors: TensorEntry[] };
  try {
    index = JSON.parse(readFileSync(indexFile, 'utf8'));
  } catch (e) {
    throw new InputError(indexFile, `cannot read the checkpoint index (${(e as Error).message})`);
  }
  if (index.format !== CHECKPOINT_FORMAT) {
    throw new InputError(indexFile, `Expected format "${CHECKPOINT_FORMAT}" but received "${index.format}"`);
  }
  const dataFile = path.join(dir, 'tensors.bin');
  const data = readFileSync(dataFile);
  if (index.sha256 !== undefined) {
    const actual = createHash('sha256').update(data).digest('hex');
    if (actual !== index.sha256) {
      throw new InputError(
        dataFile,
        `damaged: its sha256 is ${actual} but ${indexFile} records ${index.sha256}; resume from an earlier checkpoint (point checkpoints/last at it) or start again`,
      );
    }
  }
  const byName = new Map(index.tensors.map((t) => [t.name, t]));
  for (const { name, variable } of variables) {
    const entry = byName.get(name);
    if (!entry) throw new InputError(indexFile, `the checkpoint has no variable "${name}"`);
    if (entry.shape.join(',') !== variable.shape.join(',')) {
      throw new InputError(
        indexFile,
        `variable "${name}" has shape [${entry.shape}] in the checkpoint but [${variable.shape}] in the model`,
      );
    }
    if (entry.offset + entry.length > data.byteLength) {
      throw new InputError(dataFile, `truncated: variable "${name}" runs past the end`);
    }
    const copy = new Uint8Array(entry.length);
    copy.set(data.subarray(entry.offset, entry.offset + entry.length));
    const values = entry.dtype === 'int32' ? new Int32Array(copy.buffer) : new Float32Array(copy.buffer);
    tf.tidy(() => variable.assign(tf.tensor(values, entry.shape, entry.dtype)));
  }
}

/** Writes a module's variables (torchvision names) and a `config.json` to `dir`, atomically. */
export async function writeModuleTensors(
  dir: string,
  module: { variables(): Array<{ name: string; variable: tf.Variable }> },
  config: object,
): Promise<void> {
  await writeDirAtomic(dir, async (tmp) => {
    await writeTensors(
      tmp,
      module.variables().map((v) => ({ name: v.name, variable: v.variable })),
    );
    await fsp.writeFile(path.join(tmp, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
  });
}

export function checkpointName(globalStep: number): string {
  return `ckpt-${String(globalStep).padStart(9, '0')}`;
}

/**
 * Saves a checkpoint directory atomically, then points `checkpoints/last` at it
 * and removes all but the newest `keep` checkpoints. Returns its path.
 */
export async function saveCheckpoint(
  runDir: string,
  variables: NamedTensorVariable[],
  state: TrainingState,
  metrics: MetricsLog,
  keep: number,
  extra?: (dir: string) => Promise<void>,
): Promise<string> {
  const root = path.join(runDir, 'checkpoints');
  const name = checkpointName(state.globalStep);
  const target = path.join(root, name);
  await writeDirAtomic(target, async (dir) => {
    await writeTensors(dir, variables);
    await fsp.writeFile(path.join(dir, 'metrics.arrow'), metrics.toArrowBytes());
    if (extra) await extra(dir);
    // state.json last: a directory with it is complete (the rename is what makes it visible).
    await fsp.writeFile(path.join(dir, 'state.json'), `${JSON.stringify(state, null, 2)}\n`);
  });
  await pointLast(root, name);
  const all = (await fsp.readdir(root)).filter((n) => /^ckpt-\d+$/.test(n)).sort();
  for (const old of all.slice(0, Math.max(0, all.length - keep))) {
    if (old !== name) await fsp.rm(path.join(root, old), { recursive: true, force: true });
  }
  return target;
}

/**
 * Removes temporaries a killed process left in `checkpoints/` (a checkpoint
 * being written when the process died). They were never checkpoints: `last`
 * only ever points at complete, renamed directories.
 */
export async function removeStaleTemporaries(runDir: string): Promise<string[]> {
  const root = path.join(runDir, 'checkpoints');
  if (!existsSync(root)) return [];
  const stale = (await fsp.readdir(root)).filter((n) => n.startsWith('.') && /\.tmp(\.old)?$/.test(n));
  for (const name of stale) await fsp.rm(path.join(root, name), { recursive: true, force: true });
  return stale;
}

/**
 * Points `checkpoints/last` at `name`: a small text file holding the name,
 * replaced atomically (temporary file + rename).
 */
async function pointLast(root: string, name: string): Promise<void> {
  await writeFileAtomic(path.join(root, 'last'), `${name}\n`);
}

/** The checkpoint name `checkpoints/last` holds (also accepts a symbolic link), or undefined. */
export function lastCheckpointName(runDir: string): string | undefined {
  const pointer = path.join(runDir, 'checkpoints', 'last');
  let stats: ReturnType<typeof lstatSync>;
  try {
    stats = lstatSync(pointer);
  } catch {
    return undefined;
  }
  return stats.isSymbolicLink() ? readlinkSync(pointer) : readFileSync(pointer, 'utf8').trim();
}

/**
 * Where a resumed run continues from: removes the temporaries an interrupted
 * write left in `checkpoints/`, then returns the last complete checkpoint
 * (undefined when the run has none yet).
 */
export async function resumePoint(runDir: string): Promise<string | undefined> {
  await removeStaleTemporaries(runDir);
  return lastCheckpoint(runDir);
}

/** The directory `checkpoints/last` points at, or undefined when the run has none. */
export function lastCheckpoint(runDir: string): string | undefined {
  const name = lastCheckpointName(runDir);
  if (name === undefined) return undefined;
  const dir = path.join(runDir, 'checkpoints', name);
  if (!existsSync(path.join(dir, 'state.json'))) {
    throw new InputError(
      path.join(runDir, 'checkpoints', 'last'),
      `points at "${name}", which is not a complete checkpoint`,
    );
  }
  return dir;
}

export interface LoadedCheckpoint {
  dir: string;
  state: TrainingState;
  metrics: MetricsLog;
}

/** Reads a checkpoint's state and metrics and assigns its tensors to `variables`. */
export function loadCheckpoint(dir: string, variables: NamedTensorVariable[]): LoadedCheckpoint {
  const stateFile = path.join(dir, 'state.json');
  let state: TrainingState;
  try {
    state = JSON.parse(readFileSync(stateFile, 'utf8'));
  } catch (e) {
    throw new InputError(stateFile, `cannot read the training state (${(e as Error).message})`);
  }
  readTensorsInto(dir, variables);
  return { dir, state, metrics: MetricsLog.read(path.join(dir, 'metrics.arrow')) };
}
