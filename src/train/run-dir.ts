/**
 * The run folder: `runs/<id>/` holds `recipe.resolved.yaml`, `status.json`,
 * `checkpoints/`, `metrics.arrow`, `curves.png` and `backbone/`.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { stringifyRecipe } from '../recipes/load.js';
import type { PretrainRecipe } from '../recipes/pretrain-schema.js';
import { writeFileAtomic } from '../util/atomic.js';
import { InputError, invalidOption, UsageError } from '../util/errors.js';
import { assertNotAnInput, type OutputInput } from '../util/output-dir.js';

export const RESOLVED_RECIPE = 'recipe.resolved.yaml';

export interface RunStatus {
  status: 'running' | 'finished' | 'diverged' | 'stopped' | 'failed';
  message?: string;
  epoch?: number;
  step?: number;
  globalStep?: number;
  updatedAt: string;
}

function timestamp(date = new Date()): string {
  return date
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z')
    .replace('T', '-');
}

/** A run id is one folder name: letters, digits, `.`, `_`, `-`, not starting with `.` (so never `..`). */
export function assertRunId(runId: string): string {
  if (!/^[A-Za-z0-9_-][A-Za-z0-9._-]{0,199}$/.test(runId)) {
    throw invalidOption(
      '--run-id',
      'a folder name of letters, digits, ".", "_" and "-" (no "/", not starting with ".")',
      runId,
    );
  }
  return runId;
}

/**
 * Creates `outDir/<name>-<timestamp>[-n]/` (never reusing a folder) and returns its path.
 * The run folder may not lie inside one of `inputs` (the data it trains on).
 */
export function createRunDir(outDir: string, name: string, runId?: string, inputs: OutputInput[] = []): string {
  const base = runId !== undefined ? assertRunId(runId) : `${name.replace(/[^A-Za-z0-9._-]+/g, '-')}-${timestamp()}`;
  assertNotAnInput(path.join(outDir, base), inputs);
  mkdirSync(outDir, { recursive: true });
  let dir = path.join(outDir, base);
  for (let n = 2; existsSync(dir); n++) {
    if (runId) throw new UsageError(`run folder ${dir} already exists; use --resume ${dir} to continue it`);
    dir = path.join(outDir, `${base}-${n}`);
  }
  mkdirSync(dir, { recursive: true });
  return dir;
}

export async function writeResolvedRecipe(runDir: string, recipe: PretrainRecipe): Promise<void> {
  await writeFileAtomic(
    path.join(runDir, RESOLVED_RECIPE),
    stringifyRecipe(
      recipe,
      'Fully resolved recipe of this run (defaults filled, extends merged). Written by selfsup pretrain.',
    ),
  );
}

/** The recipe a run was started with (as saved, already resolved). */
export function readResolvedRecipe(runDir: string): PretrainRecipe {
  const file = path.join(runDir, RESOLVED_RECIPE);
  if (!existsSync(file)) throw new InputError(file, 'not found: is this a selfsup run folder?');
  return YAML.parse(readFileSync(file, 'utf8')) as PretrainRecipe;
}

export async function writeStatus(runDir: string, status: Omit<RunStatus, 'updatedAt'>): Promise<void> {
  await writeFileAtomic(
    path.join(runDir, 'status.json'),
    `${JSON.stringify({ ...status, updatedAt: new Date().toISOString() }, null, 2)}\n`,
  );
}

export function readStatus(runDir: string): RunStatus | undefined {
  const file = path.join(runDir, 'status.json');
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as RunStatus) : undefined;
}

/** Keys (dotted paths) whose values differ between two plain-data values. */
export function differingKeys(a: unknown, b: unknown, prefix = ''): string[] {
  const isObject = (v: unknown): v is Record<string, unknown> =>
    typeof v === 'object' && v !== null && !Array.isArray(v);
  if (isObject(a) && isObject(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
    return keys.flatMap((k) => differingKeys(a[k], b[k], prefix ? `${prefix}.${k}` : k));
  }
  return JSON.stringify(a) === JSON.stringify(b) ? [] : [prefix || '(root)'];
}

/** What a resume may change: the epoch count and the learning-rate overrides (and the run name). */
export const RESUME_MUTABLE_KEYS = ['name', 'train.epochs', 'train.lrOverrides'];

/** Throws when `recipe` differs from the run's saved recipe in anything a resume may not change. */
export function checkResumeRecipe(saved: PretrainRecipe, recipe: PretrainRecipe, runDir: string): void {
  const changed = differingKeys(saved, recipe).filter(
    (key) => !RESUME_MUTABLE_KEYS.some((m) => key === m || key.startsWith(`${m}.`)),
  );
  if (changed.length) {
    throw new UsageError(
      `cannot resume ${runDir} with a different recipe: ${changed.map((k) => `recipe.${k}`).join(', ')} changed ` +
        `(only ${RESUME_MUTABLE_KEYS.filter((k) => k !== 'name').join(' and ')} may change on resume)`,
    );
  }
}

/** The data a run trains on, recorded in `run.json` so that a resume can omit `--data`. */
export interface RunInputs {
  dataPath?: string;
  validationPath?: string;
}

/**
 * Fills data paths missing from `given` with those recorded by an earlier call
 * for the same run (on resume), then records them in `run.json`. Paths are stored absolute.
 */
export async function recordRunInputs(runDir: string, given: RunInputs): Promise<RunInputs> {
  const file = path.join(runDir, 'run.json');
  const recorded: RunInputs = existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : {};
  const inputs: RunInputs = {
    dataPath: given.dataPath ? path.resolve(given.dataPath) : recorded.dataPath,
    validationPath: given.validationPath ? path.resolve(given.validationPath) : recorded.validationPath,
  };
  await writeFileAtomic(file, `${JSON.stringify(inputs, null, 2)}\n`);
  return inputs;
}

/** The lock file a process holds while it writes a run folder. */
export const RUN_LOCK_FILE = 'run.lock';

interface LockHolder {
  pid: number;
  hostname: string;
  startedAt: string;
}

/** A held run lock; `release` removes the lock file (also done when the process exits). */
export interface RunLock {
  file: string;
  release(): void;
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: the process exists but belongs to another user.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function readHolder(file: string): LockHolder | undefined {
  try {
    const holder = JSON.parse(readFileSync(file, 'utf8')) as LockHolder;
    return Number.isInteger(holder?.pid) && holder.pid > 0 ? holder : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Takes the lock of `runDir` (`run.lock`: pid, host, start time), so that two
 * processes never write one run. A lock held by a running process is an error
 * naming its pid; a lock left by a process that is no longer running is taken
 * over, and `onTakeOver` hears about it.
 */
export function acquireRunLock(runDir: string, onTakeOver?: (message: string) => void): RunLock {
  const file = path.join(runDir, RUN_LOCK_FILE);
  const me: LockHolder = { pid: process.pid, hostname: os.hostname(), startedAt: new Date().toISOString() };
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      writeFileSync(file, `${JSON.stringify(me)}\n`, { flag: 'wx' });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const holder = readHolder(file);
      if (holder && holder.hostname !== me.hostname) {
        throw new InputError(
          runDir,
          `is locked by process ${holder.pid} on ${holder.hostname} (since ${holder.startedAt}); if no process writes this run any more, delete ${file}`,
        );
      }
      if (holder && isRunning(holder.pid)) {
        throw new InputError(
          runDir,
          `is in use by process ${holder.pid} (since ${holder.startedAt}, lock ${file}); wait for it to finish or stop it first`,
        );
      }
      onTakeOver?.(
        `${file}: taking over the lock of process ${holder?.pid ?? '(unknown)'}, which is no longer running`,
      );
      rmSync(file, { force: true });
      continue;
    }
    const release = () => {
      process.off('exit', release);
      if (readHolder(file)?.pid === me.pid) rmSync(file, { force: true });
    };
    process.on('exit', release);
    return { file, release };
  }
  throw new InputError(file, 'could not take the run lock: other processes keep taking it');
}
