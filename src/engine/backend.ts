/**
 * Backend choice: native TensorFlow on GPU > native TensorFlow on CPU > pure JS.
 *
 * Library code imports ops from `@tensorflow/tfjs` (in Node that resolves to the
 * CommonJS build, the same instance `@tensorflow/tfjs-node` extends) and calls
 * {@link initEngine} once before doing work; loading tfjs-node registers the
 * `tensorflow` backend on that shared engine.
 */

import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';

const require = createRequire(import.meta.url);

export type BackendPreference = 'auto' | 'gpu' | 'cpu' | 'js';
export const BACKEND_PREFERENCES: readonly BackendPreference[] = ['auto', 'gpu', 'cpu', 'js'];

export interface EngineInfo {
  /** tfjs backend name: `tensorflow` for native TensorFlow, `cpu` for pure JS. */
  backend: string;
  /** The npm package that provides the backend. */
  provider: '@tensorflow/tfjs-node-gpu' | '@tensorflow/tfjs-node' | '@tensorflow/tfjs';
  native: boolean;
  gpu: boolean;
  /** TensorFlow C library version (native only). */
  tensorflowVersion?: string;
  tfjsVersion: string;
  /** Threads TensorFlow uses inside one op and across ops. */
  intraOpThreads: number;
  interOpThreads: number;
  cpus: number;
  /** Whether TensorFlow's oneDNN kernels were requested (TF_ENABLE_ONEDNN_OPTS=1). */
  oneDnn: boolean;
  /** Why the choice fell where it did; warnings for slow paths. */
  notes: string[];
  /** Why native TensorFlow on the CPU is not in use (pure JS only), with the fix. */
  nativeProblem?: string;
}

export interface EngineOptions {
  /** Overrides the SELFSUP_BACKEND environment variable. Default `auto`. */
  backend?: BackendPreference;
  /** Print the pure-JS warning to stderr (default true). */
  quiet?: boolean;
}

let current: EngineInfo | undefined;

export class EngineError extends Error {
  override name = 'EngineError';
}

function parseThreads(value: string | undefined, fallback: number): number {
  const n = Number(value);
  return Number.isInteger(n) && n > 0 ? n : fallback;
}

function gpuVisible(): boolean {
  if (process.env.CUDA_VISIBLE_DEVICES === '' || process.env.CUDA_VISIBLE_DEVICES === '-1') return false;
  if (existsSync('/dev/nvidia0')) return true;
  const r = spawnSync('nvidia-smi', ['-L'], { encoding: 'utf8', timeout: 5000 });
  return r.status === 0 && /GPU \d/.test(r.stdout);
}

function canResolve(pkg: string): boolean {
  try {
    require.resolve(pkg);
    return true;
  } catch {
    return false;
  }
}

type NativePackage = '@tensorflow/tfjs-node' | '@tensorflow/tfjs-node-gpu';

/** The install directory of `pkg` as Node resolves it from here, if installed. */
export function nativePackageDir(pkg: NativePackage): string | undefined {
  try {
    return path.dirname(require.resolve(`${pkg}/package.json`));
  } catch {
    return undefined;
  }
}

/**
 * Why `pkg` cannot load, read from what its install left on disk, with the fix;
 * undefined when the files are all there (then the load error itself is the reason).
 * Install scripts that never ran (npm 11 skips dependency scripts not approved in
 * `allowScripts`, and `--ignore-scripts` skips them all) leave the package without
 * its TensorFlow library and binding.
 */
export function nativeInstallProblem(pkg: NativePackage): string | undefined {
  const dir = nativePackageDir(pkg);
  if (!dir) {
    return pkg === '@tensorflow/tfjs-node'
      ? `${pkg} is not installed (an optional dependency: npm drops it when its install script fails); ` +
          'reinstall and read the "selfsup:" block the install prints (docs/install.md)'
      : `${pkg} is not installed; on Linux x86-64 run SELFSUP_GPU=1 npm ci (docs/install.md, "GPU")`;
  }
  const hasLibrary = existsSync(path.join(dir, 'deps', 'lib', 'libtensorflow.so.2.9.1'));
  const hasBinding = (() => {
    try {
      return readdirSync(path.join(dir, 'lib')).some((d) => existsSync(path.join(dir, 'lib', d, 'tfjs_binding.node')));
    } catch {
      return false;
    }
  })();
  if (process.platform === 'linux' && !hasLibrary && !hasBinding) {
    return (
      `${pkg} has neither its TensorFlow library nor its binding: its install scripts did not run. ` +
      'npm 11 runs only approved dependency scripts: run `npm install-scripts approve selfsup ' +
      `${pkg}\` and then \`npm rebuild selfsup ${pkg}\` (docs/install.md, "As a dependency")`
    );
  }
  if (!hasBinding) {
    return `${pkg}'s binding (tfjs_binding.node) was not built: run \`npm rebuild ${pkg}\` and read its output (it needs g++, make and python3)`;
  }
  return undefined;
}

/** The reason `pkg` failed to load: what its install left missing, else the load error's first line. */
function loadFailure(pkg: NativePackage, e: unknown): string {
  return nativeInstallProblem(pkg) ?? (e as Error).message.split('\n')[0];
}

/** Reads and validates the preference from an option or SELFSUP_BACKEND. */
export function resolveBackendPreference(option?: string): BackendPreference {
  const source = option !== undefined ? 'option --backend' : 'SELFSUP_BACKEND';
  const value = (option ?? process.env.SELFSUP_BACKEND ?? 'auto').toLowerCase();
  if (!(BACKEND_PREFERENCES as readonly string[]).includes(value)) {
    throw new EngineError(`Expected one of ${BACKEND_PREFERENCES.join(', ')} for ${source} but received "${value}"`);
  }
  return value as BackendPreference;
}

function loadNative(pkg: NativePackage): string {
  // TensorFlow's C++ logging is chatty at level 0; keep warnings and errors only unless asked.
  process.env.TF_CPP_MIN_LOG_LEVEL ??= '1';
  // TensorFlow 2.12 turns its oneDNN kernels on by default only on CPUs with
  // AVX512-VNNI/BF16/AMX. On AVX2 machines they train a ResNet-18 ~1.7x faster
  // than the Eigen kernels (docs/results.md, "Backbones"), so ask for them unless
  // the user chose. Must be set before the library loads.
  process.env.TF_ENABLE_ONEDNN_OPTS ??= '1';
  // biome-ignore lint/suspicious/noExplicitAny: the binding is untyped
  const mod = require(pkg) as any;
  const version: string | undefined = mod?.backend?.()?.binding?.TF_Version;
  if (tf.getBackend() !== 'tensorflow') {
    throw new EngineError(`${pkg} loaded but the active backend is "${tf.getBackend()}"`);
  }
  return version ?? 'unknown';
}

/**
 * Picks and activates the backend. Idempotent: later calls return the first
 * result (only one native package may be loaded in a process).
 */
export function initEngine(options: EngineOptions = {}): EngineInfo {
  if (current) return current;
  const preference = resolveBackendPreference(options.backend);
  const cpus = os.availableParallelism?.() ?? os.cpus().length;
  const notes: string[] = [];
  let provider: EngineInfo['provider'] = '@tensorflow/tfjs';
  let tensorflowVersion: string | undefined;
  let gpu = false;
  let nativeProblem: string | undefined;

  const tryGpu = preference === 'gpu' || (preference === 'auto' && canResolve('@tensorflow/tfjs-node-gpu'));
  if (tryGpu) {
    if (preference === 'auto' && !gpuVisible()) {
      notes.push('@tensorflow/tfjs-node-gpu is installed but no GPU is visible; using the CPU');
    } else {
      try {
        tensorflowVersion = loadNative('@tensorflow/tfjs-node-gpu');
        provider = '@tensorflow/tfjs-node-gpu';
        gpu = true;
      } catch (e) {
        if (preference === 'gpu') {
          throw new EngineError(
            `backend "gpu" was asked for but @tensorflow/tfjs-node-gpu failed to load: ${(e as Error).message.split('\n')[0]}`,
          );
        }
        notes.push(`@tensorflow/tfjs-node-gpu failed to load (${(e as Error).message.split('\n')[0]}); trying the CPU`);
      }
    }
  }
  if (!gpu && (preference === 'auto' || preference === 'cpu')) {
    try {
      tensorflowVersion = loadNative('@tensorflow/tfjs-node');
      provider = '@tensorflow/tfjs-node';
    } catch (e) {
      const why = loadFailure('@tensorflow/tfjs-node', e);
      nativeProblem = why;
      if (preference === 'cpu') {
        throw new EngineError(
          `backend "cpu" (native TensorFlow) was asked for but @tensorflow/tfjs-node failed to load: ${why}. See docs/install.md.`,
        );
      }
      notes.push(`@tensorflow/tfjs-node failed to load: ${why}`);
    }
  }
  if (provider === '@tensorflow/tfjs') {
    tf.setBackend('cpu');
    const warning =
      'WARNING: running on pure-JS TensorFlow.js (no native TensorFlow). Training is ~4000x slower; ' +
      'selfsup refuses long runs unless you pass --allow-slow-backend. See docs/install.md to get native TensorFlow.';
    notes.push(warning);
    const why = nativeProblem ? `\nNative TensorFlow: ${nativeProblem}.` : '';
    if (!options.quiet) process.stderr.write(`\n${'!'.repeat(78)}\n${warning}${why}\n${'!'.repeat(78)}\n\n`);
  }

  current = {
    backend: tf.getBackend(),
    provider,
    native: provider !== '@tensorflow/tfjs',
    gpu,
    tensorflowVersion,
    tfjsVersion: tf.version_core,
    intraOpThreads: parseThreads(process.env.TF_NUM_INTRAOP_THREADS, cpus),
    interOpThreads: parseThreads(process.env.TF_NUM_INTEROP_THREADS, cpus),
    cpus,
    oneDnn: process.env.TF_ENABLE_ONEDNN_OPTS === '1',
    notes,
    ...(nativeProblem ? { nativeProblem } : {}),
  };
  return current;
}

/** The engine chosen so far, if any. */
export function engineInfo(): EngineInfo | undefined {
  return current;
}

/**
 * Throws unless the backend is native or the caller explicitly allows a slow one.
 * Call before any long job (pretraining, finetuning, embedding a folder).
 */
export function assertFastBackend(allowSlowBackend = false): EngineInfo {
  const info = initEngine();
  if (!info.native && !allowSlowBackend) {
    throw new EngineError(
      'native TensorFlow is not available and pure JS is ~4000x slower; refusing a long run. ' +
        (info.nativeProblem ? `Native TensorFlow: ${info.nativeProblem}. ` : '') +
        'Install native TensorFlow (docs/install.md) or pass --allow-slow-backend.',
    );
  }
  return info;
}
