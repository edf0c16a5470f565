#!/usr/bin/env node
/*
 * `SELFSUP_GPU=1 npm ci`: installs @tensorflow/tfjs-node-gpu built against the
 * CUDA build of TensorFlow's C library taken from the `tensorflow` wheel, with the
 * CUDA libraries from NVIDIA's pip wheels (the wheel's `and-cuda` extra).
 *
 * tfjs-node-gpu's own install script always downloads libtensorflow-gpu 2.9.1
 * (CUDA 11.2) from a bucket that no longer serves it, so it is not a dependency in
 * package.json; this script (selfsup's `postinstall`, before the native check) does
 * its install instead:
 *   1. `npm pack @tensorflow/tfjs-node-gpu@<tfjs-node's version>` (cached) and unpack
 *      it next to @tensorflow/tfjs-node (their dependencies are the same);
 *   2. `pip download --no-deps` the `tensorflow` wheel and the NVIDIA wheels its
 *      `and-cuda` extra pins, unpack the C library, headers and CUDA libraries into
 *      a cache outside the project;
 *   3. link them into the package's deps/ (the CUDA libraries under deps/nvidia/,
 *      where the library's RUNPATH $ORIGIN/../nvidia/<part>/lib finds them: no
 *      LD_LIBRARY_PATH);
 *   4. build its binding with its own install script, as tfjs-node's is built;
 *   5. load it in a child process and report what it found.
 * Any failure prints one block saying what failed and how to fix it, removes the
 * half-installed package, and leaves the CPU package untouched.
 *
 * Does nothing unless SELFSUP_GPU=1. A later plain `npm install` removes the
 * package (npm prunes what package.json does not list): run `SELFSUP_GPU=1 npm ci`.
 *
 * Environment:
 *   SELFSUP_GPU                1 to install the GPU package
 *   SELFSUP_TF_GPU_VERSION     `tensorflow` wheel version (default below)
 *   SELFSUP_CACHE_DIR          cache root (default $XDG_CACHE_HOME/selfsup or ~/.cache/selfsup)
 *   PYTHON                     the Python whose pip fetches the wheels
 */
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const os = require('node:os');
const cp = require('node:child_process');
const {
  log,
  block,
  findPackageDir,
  cacheRoot,
  requirePython,
  pipDownload,
  extractWheel,
  definedSymbols,
  exportsCApi,
  stageRuntime,
} = require('./lib.cjs');

/**
 * 2.19.0: its `and-cuda` extra pins CUDA 12.5 and cuDNN 9.3 wheels (all on PyPI),
 * and its C API compiles with tfjs-node 4.22's binding unchanged (also checked on
 * the CPU route, docs/install.md).
 */
const DEFAULT_VERSION = '2.19.0';
const GPU_PACKAGE = '@tensorflow/tfjs-node-gpu';

const READ_EXTRA_PY = `
import sys, zipfile, re
with zipfile.ZipFile(sys.argv[1]) as z:
    meta = next(n for n in z.namelist() if n.endswith('.dist-info/METADATA'))
    for line in z.read(meta).decode().splitlines():
        m = re.match(r"Requires-Dist: *([A-Za-z0-9_.-]+) *\\(?==+ *([^ ;)]+)\\)? *; *extra *== *['\\"]and-cuda['\\"]", line)
        if m:
            print(m.group(1) + '==' + m.group(2))
`;

function run(cmd, args, options = {}) {
  const r = cp.spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 26, ...options });
  if (r.error) throw new Error(`${cmd} ${args.join(' ')}: ${r.error.message}`);
  if (r.status !== 0) {
    const lines = `${r.stdout || ''}\n${r.stderr || ''}`.split('\n').map((l) => l.trim());
    const errors = lines.filter((l) => /(^|\s)(Error|error):|ERR! stack Error|not found|No such file/.test(l));
    const why = (errors.length ? errors.slice(0, 2) : lines.filter(Boolean).slice(-2)).join(' | ');
    throw new Error(`\`${cmd} ${args.join(' ')}\` exited with ${r.status}: ${why}`);
  }
  return r.stdout;
}

/** The cached runtime directory for `version`, fetched and unpacked once. */
function ensureCachedGpuRuntime(version) {
  const dir = path.join(cacheRoot(), 'tensorflow-runtime', `${version}-cuda-linux-x86_64`);
  if (fs.existsSync(path.join(dir, 'COMPLETE'))) {
    log(`using cached TensorFlow ${version} CUDA runtime in ${dir}`);
    return dir;
  }
  const python = requirePython();
  // Wheels are kept until the runtime is complete, so an interrupted install resumes.
  const downloads = path.join(cacheRoot(), 'downloads', `tensorflow-${version}-cuda`);
  log(`fetching tensorflow==${version} with pip download (about 650 MB, once)`);
  const tfWheel = pipDownload(python, [`tensorflow==${version}`], path.join(downloads, 'tensorflow')).find((f) =>
    path.basename(f).startsWith(`tensorflow-${version}-`),
  );
  if (!tfWheel) throw new Error(`pip download left no tensorflow-${version} wheel`);
  const extra = run(python, ['-c', READ_EXTRA_PY, tfWheel]).trim().split('\n').filter(Boolean);
  if (!extra.length)
    throw new Error(`tensorflow ${version} has no "and-cuda" extra (it first appears in 2.14); use 2.15 or newer`);
  log(`fetching its and-cuda wheels with pip download (about 1.8 GB, once): ${extra.join(' ')}`);
  const nvWheels = pipDownload(python, extra, path.join(downloads, 'nvidia'));

  fs.mkdirSync(path.dirname(dir), { recursive: true });
  const tmp = `${dir}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  try {
    log(`extracting the C runtime from ${path.basename(tfWheel)}`);
    extractWheel(python, tfWheel, tmp, 'tensorflow');
    const libs = ['libtensorflow_cc.so.2', 'libtensorflow_framework.so.2'].map((f) => path.join(tmp, 'lib', f));
    if (!fs.existsSync(libs[0])) throw new Error(`tensorflow ${version} has no libtensorflow_cc.so.2`);
    const sym = exportsCApi(libs);
    if (sym.checked && sym.missing.length)
      throw new Error(`libtensorflow_cc.so.2 of ${version} lacks ${sym.missing.join(', ')}`);
    if (sym.checked && !/CudaExecutor10LoadKernel/.test(definedSymbols([libs[0]])))
      throw new Error(`libtensorflow_cc.so.2 of tensorflow ${version} is not a CUDA build`);
    const packages = {};
    for (const spec of extra) {
      const [name, want] = spec.split('==');
      const file = nvWheels.find((f) => path.basename(f).startsWith(`${name.replace(/-/g, '_')}-${want}-`));
      if (!file) throw new Error(`pip download left no wheel for ${spec}`);
      log(`extracting the libraries of ${path.basename(file)}`);
      extractWheel(python, file, tmp, 'nvidia');
      packages[name] = want;
    }
    const manifest = {
      source: 'tensorflow wheel (CUDA build) + NVIDIA pip wheels',
      version,
      cuda: packages['nvidia-cuda-runtime-cu12'] ?? packages['nvidia-cuda-runtime-cu11'],
      cudnn: packages['nvidia-cudnn-cu12'] ?? packages['nvidia-cudnn-cu11'],
      nvidiaPackages: packages,
      date: new Date().toISOString(),
    };
    fs.writeFileSync(path.join(tmp, 'COMPLETE'), `${JSON.stringify(manifest, null, 2)}\n`);
    fs.rmSync(dir, { recursive: true, force: true });
    fs.renameSync(tmp, dir);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  fs.rmSync(downloads, { recursive: true, force: true });
  return dir;
}

/** Unpacks the npm package of tfjs-node-gpu (fetched with `npm pack`, cached) into `target`. */
function unpackGpuPackage(version, target) {
  const cache = path.join(cacheRoot(), 'packages');
  fs.mkdirSync(cache, { recursive: true });
  const tgz = path.join(cache, `tensorflow-tfjs-node-gpu-${version}.tgz`);
  if (!fs.existsSync(tgz)) {
    log(`fetching ${GPU_PACKAGE}@${version} with npm pack`);
    const npm = process.env.npm_execpath
      ? [process.execPath, [process.env.npm_execpath]]
      : [process.platform === 'win32' ? 'npm.cmd' : 'npm', []];
    run(npm[0], [...npm[1], 'pack', `${GPU_PACKAGE}@${version}`, '--pack-destination', cache, '--silent'], {
      cwd: cache,
    });
    if (!fs.existsSync(tgz)) throw new Error(`npm pack ${GPU_PACKAGE}@${version} left no ${tgz}`);
  }
  const tmp = `${target}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  run('tar', ['-xzf', tgz, '-C', tmp]);
  fs.rmSync(target, { recursive: true, force: true });
  fs.renameSync(path.join(tmp, 'package'), target);
  fs.rmSync(tmp, { recursive: true, force: true });
}

/** Compiles the binding with the package's own install script (as npm would run tfjs-node's). */
function buildBinding(target, nodeModules) {
  const bins = [path.join(target, 'node_modules', '.bin'), path.join(nodeModules, '.bin')];
  const env = {
    ...process.env,
    PATH: [...bins, process.env.PATH].join(path.delimiter),
    // No prebuilt GPU binding matches this library: compile it.
    npm_config_build_from_source: 'true',
  };
  log(`compiling the ${GPU_PACKAGE} binding with node-gyp`);
  run(process.execPath, ['scripts/install.js', 'gpu'], { cwd: target, env });
  const built = fs
    .readdirSync(path.join(target, 'lib'))
    .some((d) => fs.existsSync(path.join(target, 'lib', d, 'tfjs_binding.node')));
  if (!built) throw new Error('the build finished but left no lib/napi-v*/tfjs_binding.node');
}

const PROBE = `
const tf = require(process.argv[1]);
const y = tf.conv2d(tf.ones([1, 4, 4, 1]), tf.ones([3, 3, 1, 1]), 1, 'same').sum().dataSync()[0];
process.stdout.write(JSON.stringify({ backend: tf.getBackend(), tf: tf.backend().binding.TF_Version,
  gpuDevice: tf.backend().isUsingGpuDevice, check: y }));
`;

/** Loads the package in a child process: TensorFlow version and whether it sees a GPU. */
function probe(target) {
  const r = cp.spawnSync(process.execPath, ['-e', PROBE, target], {
    encoding: 'utf8',
    env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '2' },
    timeout: 300000,
  });
  let info;
  try {
    info = JSON.parse(r.stdout);
  } catch {
    info = undefined;
  }
  if (r.status !== 0 || !info || info.backend !== 'tensorflow' || info.check !== 100) {
    const lines = (r.stderr || r.error?.message || 'no output').trim().split('\n').filter(Boolean);
    const errs = lines.filter((l) => /Error|error:|cannot|not found/i.test(l) && !/^\s+at /.test(l));
    throw new Error(`the built package does not load: ${(errs.length ? errs : lines).slice(0, 2).join(' | ')}`);
  }
  return info;
}

function main() {
  const flag = (process.env.SELFSUP_GPU || '').toLowerCase();
  if (!['1', 'true', 'yes'].includes(flag)) return;
  const version = process.env.SELFSUP_TF_GPU_VERSION || DEFAULT_VERSION;
  let target;
  try {
    if (os.platform() !== 'linux' || os.arch() !== 'x64')
      throw new Error(`the CUDA wheel route exists for Linux x86-64 only, not ${os.platform()}-${os.arch()}`);
    const cpuDir = findPackageDir('@tensorflow/tfjs-node');
    if (!cpuDir)
      throw new Error(
        '@tensorflow/tfjs-node is not installed (the GPU package is built next to it, from its dependencies)',
      );
    const tfjsVersion = JSON.parse(fs.readFileSync(path.join(cpuDir, 'package.json'), 'utf8')).version;
    const nodeModules = path.dirname(path.dirname(cpuDir));
    target = path.join(nodeModules, ...GPU_PACKAGE.split('/'));
    const runtime = ensureCachedGpuRuntime(version);
    unpackGpuPackage(tfjsVersion, target);
    const manifest = JSON.parse(fs.readFileSync(path.join(runtime, 'COMPLETE'), 'utf8'));
    stageRuntime(runtime, target, manifest);
    log(`staged TensorFlow ${version} (CUDA ${manifest.cuda}, cuDNN ${manifest.cudnn}) for ${GPU_PACKAGE}`);
    buildBinding(target, nodeModules);
    const info = probe(target);
    log(
      `${GPU_PACKAGE} ready: TensorFlow ${info.tf}, CUDA build, ` +
        (info.gpuDevice ? 'a GPU is in use' : 'no GPU visible (it runs on the CPU; `selfsup doctor` says why)'),
    );
  } catch (e) {
    if (target) fs.rmSync(target, { recursive: true, force: true });
    block(`the GPU package was NOT installed (SELFSUP_GPU=${process.env.SELFSUP_GPU})`, [
      `What failed: ${e.message}`,
      'The CPU package (@tensorflow/tfjs-node) is untouched; selfsup runs on the CPU.',
      'How to fix it (docs/install.md, "GPU"):',
      ' - needs Linux x86-64, python3 with pip, g++, make, and about 6 GB free under',
      `   ${cacheRoot()} (the tensorflow and NVIDIA wheels, once)`,
      ' - a download that failed resumes: run SELFSUP_GPU=1 npm ci again',
      ' - another wheel version: SELFSUP_TF_GPU_VERSION=2.20.0 SELFSUP_GPU=1 npm ci',
    ]);
  }
}

main();
