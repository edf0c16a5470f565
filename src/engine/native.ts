/**
 * What the native TensorFlow packages left on disk and what the machine offers a
 * CUDA build: the install diagnosis behind load failures, the runtime a package
 * was staged with (native/tensorflow-runtime writes deps/selfsup-runtime.json),
 * and why no GPU can be used. Reads files and asks the system; loads nothing.
 */

import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);

export const GPU_PACKAGE = '@tensorflow/tfjs-node-gpu';

export type NativePackage = '@tensorflow/tfjs-node' | '@tensorflow/tfjs-node-gpu';

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
  if (pkg === GPU_PACKAGE && !(hasLibrary && hasBinding)) {
    return `${pkg} lacks its TensorFlow library or binding: run SELFSUP_GPU=1 npm ci and read its "[selfsup runtime]" lines`;
  }
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

/** Where a native package's TensorFlow came from and which CUDA it was built for. */
export interface NativeRuntime {
  package: NativePackage;
  /** TensorFlow C library version the runtime was taken from (a wheel version), if staged by selfsup. */
  version?: string;
  /** Where the library came from. */
  source: string;
  /** Whether the library is a CUDA build. */
  cudaBuild: boolean;
  /** CUDA runtime and cuDNN staged with it: version, and whether the library file is in place. */
  cuda?: { version: string; library: string; found: boolean };
  cudnn?: { version: string; library: string; found: boolean };
}

function stagedLibrary(dir: string, part: string, prefix: string): string | undefined {
  try {
    return readdirSync(path.join(dir, 'deps', 'nvidia', part, 'lib'))
      .filter((f) => f.startsWith(prefix))
      .sort()[0];
  } catch {
    return undefined;
  }
}

/** Describes an installed native package from its deps/ folder; undefined when not installed. */
export function describeNativePackage(pkg: NativePackage): NativeRuntime | undefined {
  const dir = nativePackageDir(pkg);
  if (!dir) return undefined;
  let manifest: { source?: string; version?: string; cuda?: string; cudnn?: string } = {};
  try {
    manifest = JSON.parse(readFileSync(path.join(dir, 'deps', 'selfsup-runtime.json'), 'utf8'));
  } catch {
    // not staged by selfsup: the package's own download
  }
  if (manifest.cuda) {
    const cudart = stagedLibrary(dir, 'cuda_runtime', 'libcudart.so');
    const cudnn = stagedLibrary(dir, 'cudnn', 'libcudnn.so');
    return {
      package: pkg,
      version: manifest.version,
      source: manifest.source ?? 'unknown',
      cudaBuild: true,
      cuda: { version: manifest.cuda, library: cudart ?? 'libcudart.so', found: cudart !== undefined },
      ...(manifest.cudnn
        ? { cudnn: { version: manifest.cudnn, library: cudnn ?? 'libcudnn.so', found: cudnn !== undefined } }
        : {}),
    };
  }
  const gpu = pkg === GPU_PACKAGE;
  return {
    package: pkg,
    version: manifest.version,
    source: manifest.source ?? `the official libtensorflow${gpu ? '-gpu' : ''} download`,
    cudaBuild: gpu,
  };
}

function driverLibraryFound(): boolean {
  const r = spawnSync('ldconfig', ['-p'], { encoding: 'utf8', timeout: 5000 });
  if (r.status === 0 && /\blibcuda\.so\.1\b/.test(r.stdout)) return true;
  return ['/usr/lib/x86_64-linux-gnu/libcuda.so.1', '/usr/lib64/libcuda.so.1', '/usr/lib/wsl/lib/libcuda.so.1'].some(
    (f) => existsSync(f),
  );
}

function gpuDeviceNodes(): boolean {
  try {
    return readdirSync('/dev').some((f) => /^nvidia\d+$/.test(f) || f === 'dxg');
  } catch {
    return false;
  }
}

/** GPUs the NVIDIA driver lists (`nvidia-smi -L`); empty without a driver. */
export function listedGpus(): string[] {
  const r = spawnSync('nvidia-smi', ['-L'], { encoding: 'utf8', timeout: 10000 });
  if (r.status !== 0) return [];
  return r.stdout
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => /^GPU \d+/.test(l));
}

/**
 * Why a CUDA build cannot see a GPU on this machine, from the environment, the
 * driver library and the device nodes; undefined when all are in place.
 */
export function gpuSystemProblem(): string | undefined {
  const visible = process.env.CUDA_VISIBLE_DEVICES;
  if (visible === '' || visible === '-1') return `CUDA_VISIBLE_DEVICES="${visible}" hides every GPU`;
  if (process.platform !== 'linux') return `the CUDA build is set up for Linux only, not ${process.platform}`;
  const driver = driverLibraryFound();
  const devices = gpuDeviceNodes();
  if (!driver && !devices) return 'no NVIDIA driver (libcuda.so.1 not found) and no GPU device (/dev/nvidia*)';
  if (!driver) return 'no NVIDIA driver library (libcuda.so.1 not found by ldconfig)';
  if (!devices) return 'the NVIDIA driver library is installed but there is no GPU device node (/dev/nvidia*)';
  return undefined;
}
