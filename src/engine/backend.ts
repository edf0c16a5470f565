/**
 * Backend choice: native TensorFlow on GPU > native TensorFlow on CPU > pure JS.
 *
 * Library code imports ops from `@tensorflow/tfjs` (in Node that resolves to the
 * CommonJS build, the same instance `@tensorflow/tfjs-node` extends) and calls
 * {@link initEngine} once before doing work; loading tfjs-node registers the
 * `tensorflow` backend on that shared engine.
 */

import { createRequire } from 'node:module';
import os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import {
  describeNativePackage,
  GPU_PACKAGE,
  gpuSystemProblem,
  listedGpus,
  type NativePackage,
  type NativeRuntime,
  nativeInstallProblem,
  nativePackageDir,
} from './native.js';

const require = createRequire(import.meta.url);

export type BackendPreference = 'auto' | 'gpu' | 'cpu' | 'js';
export const BACKEND_PREFERENCES: readonly BackendPreference[] = ['auto', 'gpu', 'cpu', 'js'];

export interface EngineInfo {
  /** tfjs backend name: `tensorflow` for native TensorFlow, `cpu` for pure JS. */
  backend: string;
  /** The npm package that provides the backend. */
  provider: '@tensorflow/tfjs-node-gpu' | '@tensorflow/tfjs-node' | '@tensorflow/tfjs';
  native: boolean;
  /** Whether TensorFlow runs ops on a GPU. */
  gpu: boolean;
  /** Where the loaded native package's TensorFlow came from and whether it is a CUDA build. */
  runtime?: NativeRuntime;
  /** Why no GPU is used, when the GPU package was asked for or is installed. */
  gpuProblem?: string;
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

/**
 * The package the CPU path loads: @tensorflow/tfjs-node, or the one named by
 * SELFSUP_NATIVE_PACKAGE (to run the GPU package's CUDA build on the CPU).
 */
function cpuPackage(): NativePackage {
  const v = process.env.SELFSUP_NATIVE_PACKAGE;
  if (v === undefined || v === '') return '@tensorflow/tfjs-node';
  if (v !== '@tensorflow/tfjs-node' && v !== GPU_PACKAGE) {
    throw new EngineError(
      `Expected @tensorflow/tfjs-node or ${GPU_PACKAGE} for SELFSUP_NATIVE_PACKAGE but received "${v}"`,
    );
  }
  return v;
}

/** The reason `pkg` failed to load: what its install left missing, else the load error's first line. */
function loadFailure(pkg: NativePackage, e: unknown): string {
  return nativeInstallProblem(pkg) ?? (e as Error).message.split('\n')[0];
}

/**
 * The one-line error for `--backend gpu`: the GPU package failed to load
 * (`kind` "load") or no GPU works with it (`kind` "device"); `why` says what.
 */
export function gpuBackendError(why: string, kind: 'load' | 'device' = 'device'): EngineError {
  return new EngineError(
    kind === 'load'
      ? `backend "gpu" was asked for but ${GPU_PACKAGE} failed to load: ${why}`
      : `backend "gpu" was asked for but no GPU works: ${why}`,
  );
}

/** Whether the loaded native backend placed its ops on a GPU device. */
function usingGpuDevice(): boolean {
  return (tf.backend() as unknown as { isUsingGpuDevice?: boolean }).isUsingGpuDevice === true;
}

/** Why TensorFlow found no GPU although the system shows a driver and a device. */
function noDeviceFound(): string {
  const gpus = listedGpus();
  const cuda = describeNativePackage(GPU_PACKAGE)?.cuda?.version;
  return (
    `TensorFlow found no usable GPU although ${gpus.length ? `the driver lists ${gpus.join('; ')}` : 'a driver and a device are present'}` +
    `: the driver may be too old for CUDA ${cuda ?? 'of this build'} or the GPU unsupported; TF_CPP_MIN_LOG_LEVEL=0 shows TensorFlow's own reason`
  );
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

  let gpuProblem: string | undefined;
  const cpuPkg = preference === 'gpu' || preference === 'js' ? '@tensorflow/tfjs-node' : cpuPackage();

  if (preference === 'gpu') {
    // Checked before loading: only one native package may be loaded in a process.
    if (!nativePackageDir(GPU_PACKAGE))
      throw gpuBackendError(nativeInstallProblem(GPU_PACKAGE) ?? 'not installed', 'load');
    const system = gpuSystemProblem();
    if (system) throw gpuBackendError(system);
    try {
      tensorflowVersion = loadNative(GPU_PACKAGE);
    } catch (e) {
      throw gpuBackendError(loadFailure(GPU_PACKAGE, e), 'load');
    }
    if (!usingGpuDevice()) throw gpuBackendError(noDeviceFound());
    provider = GPU_PACKAGE;
    gpu = true;
  } else if (preference === 'auto' && cpuPkg !== GPU_PACKAGE && nativePackageDir(GPU_PACKAGE)) {
    gpuProblem = gpuSystemProblem();
    if (gpuProblem) {
      notes.push(`${GPU_PACKAGE} is installed but not used: ${gpuProblem}; using the CPU`);
    } else {
      try {
        tensorflowVersion = loadNative(GPU_PACKAGE);
        provider = GPU_PACKAGE;
        gpu = usingGpuDevice();
        if (!gpu) {
          gpuProblem = noDeviceFound();
          notes.push(`${GPU_PACKAGE} runs on the CPU: ${gpuProblem}`);
        }
      } catch (e) {
        gpuProblem = loadFailure(GPU_PACKAGE, e);
        notes.push(`${GPU_PACKAGE} failed to load (${gpuProblem}); trying the CPU`);
      }
    }
  }
  if (provider === '@tensorflow/tfjs' && (preference === 'auto' || preference === 'cpu')) {
    try {
      // The CPU path through the GPU package: hide GPUs when the CPU was asked for.
      if (cpuPkg === GPU_PACKAGE && preference === 'cpu') process.env.CUDA_VISIBLE_DEVICES ??= '-1';
      tensorflowVersion = loadNative(cpuPkg);
      provider = cpuPkg;
      gpu = cpuPkg === GPU_PACKAGE && usingGpuDevice();
      if (cpuPkg === GPU_PACKAGE && !gpu) gpuProblem = gpuSystemProblem() ?? noDeviceFound();
    } catch (e) {
      const why = loadFailure(cpuPkg, e);
      nativeProblem = why;
      if (preference === 'cpu') {
        throw new EngineError(
          `backend "cpu" (native TensorFlow) was asked for but ${cpuPkg} failed to load: ${why}. See docs/install.md.`,
        );
      }
      notes.push(`${cpuPkg} failed to load: ${why}`);
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
    ...(provider !== '@tensorflow/tfjs' ? { runtime: describeNativePackage(provider) } : {}),
    ...(gpuProblem ? { gpuProblem } : {}),
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
