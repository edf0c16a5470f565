'use strict';
/*
 * Shared by the runtime stagers (stage.cjs for @tensorflow/tfjs-node, gpu.cjs for
 * @tensorflow/tfjs-node-gpu): finding packages and Python, fetching wheels with
 * `pip download`, unpacking the parts of a wheel that are needed, and linking a
 * cached runtime into a tfjs-node package's `deps/` folder.
 */

const fs = require('node:fs');
const path = require('node:path');
const os = require('node:os');
const cp = require('node:child_process');

/** The libtensorflow version tfjs-node 4.x expects in deps/lib (the file name it looks for). */
const TFJS_LIB_VERSION = '2.9.1';

const log = (msg) => process.stderr.write(`[selfsup runtime] ${msg}\n`);

/** One block on stderr: a title and the lines under it. */
function block(title, lines) {
  const bar = '='.repeat(78);
  process.stderr.write(`\n${bar}\n selfsup: ${title}\n${bar}\n${lines.map((l) => ` ${l}`).join('\n')}\n${bar}\n\n`);
}

/**
 * Finds an installed package the way Node would from `from`: the nearest
 * node_modules/<name> walking up. Works for this folder inside the repo
 * (native/tensorflow-runtime), copied into node_modules/@selfsup/tensorflow-runtime,
 * and inside an installed selfsup (node_modules/selfsup/native/tensorflow-runtime),
 * whether npm hoisted the package or nested it under selfsup.
 */
function findPackageDir(name, from = __dirname) {
  const starts = [from, process.env.INIT_CWD].filter(Boolean);
  for (const start of starts) {
    let dir = path.resolve(start);
    for (;;) {
      const candidate = path.join(dir, 'node_modules', ...name.split('/'));
      if (fs.existsSync(path.join(candidate, 'package.json'))) return candidate;
      const parent = path.dirname(dir);
      if (parent === dir) break;
      dir = parent;
    }
  }
  return undefined;
}

function cacheRoot() {
  if (process.env.SELFSUP_CACHE_DIR) return process.env.SELFSUP_CACHE_DIR;
  const xdg = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(xdg, 'selfsup');
}

function findPython() {
  for (const exe of [process.env.PYTHON, 'python3', 'python'].filter(Boolean)) {
    const r = cp.spawnSync(exe, ['-c', 'import sys, pip; print(sys.version_info[0])'], { encoding: 'utf8' });
    if (r.status === 0 && r.stdout.trim() === '3') return exe;
  }
  return undefined;
}

function requirePython() {
  const python = findPython();
  if (!python)
    throw new Error('no Python 3 with pip was found (needed to run `pip download`); set PYTHON=/path/to/python3');
  return python;
}

/**
 * `pip download --no-deps` of binary wheels for Linux x86-64 into `dest` (never
 * installed into Python). pip skips files already in `dest`. Returns the paths of
 * the wheels in `dest` after the download.
 */
function pipDownload(python, specs, dest) {
  fs.mkdirSync(dest, { recursive: true });
  const args = ['-m', 'pip', 'download', '--no-deps', '--only-binary=:all:', '--python-version', '3.11'];
  for (const p of ['manylinux2014_x86_64', 'manylinux_2_17_x86_64', 'manylinux_2_27_x86_64', 'manylinux_2_28_x86_64'])
    args.push('--platform', p);
  args.push('--disable-pip-version-check', '-d', dest, ...specs);
  const r = cp.spawnSync(python, args, { stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0) throw new Error(`\`${python} ${args.join(' ')}\` exited with ${r.status}`);
  return fs
    .readdirSync(dest)
    .filter((f) => f.endsWith('.whl'))
    .map((f) => path.join(dest, f));
}

/*
 * Unpacks from a wheel (a zip file) either TensorFlow's C libraries and C headers
 * (mode "tensorflow": lib/ and include/) or an NVIDIA wheel's shared libraries
 * (mode "nvidia": nvidia/<part>/lib/, the layout TensorFlow's RUNPATH expects).
 * Prints the number of files written.
 */
const EXTRACT_PY = `
import sys, zipfile, os, fnmatch
wheel, dest, mode = sys.argv[1], sys.argv[2], sys.argv[3]
tf_keep = ['tensorflow/libtensorflow_cc.so.2', 'tensorflow/libtensorflow_framework.so.2',
           'tensorflow/include/tensorflow/c/*', 'tensorflow/include/tensorflow/tsl/c/*',
           'tensorflow/include/tsl/c/*', 'tensorflow/include/xla/tsl/c/*',
           'tensorflow/include/tsl/platform/ctstring*',
           'tensorflow/include/tensorflow/tsl/platform/ctstring*',
           'tensorflow/include/tensorflow/core/platform/ctstring*']
def target(name):
    if mode == 'nvidia':
        parts = name.split('/')
        if len(parts) == 4 and parts[0] == 'nvidia' and parts[2] == 'lib' and '.so' in parts[3]:
            return name
        return None
    if not any(fnmatch.fnmatch(name, k) for k in tf_keep):
        return None
    rel = name[len('tensorflow/'):]
    return rel if rel.startswith('include/') else 'lib/' + rel
n = 0
with zipfile.ZipFile(wheel) as z:
    for info in z.infolist():
        out = None if info.is_dir() else target(info.filename)
        if not out:
            continue
        out = os.path.join(dest, out)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with z.open(info) as src, open(out, 'wb') as dst:
            while True:
                chunk = src.read(1 << 20)
                if not chunk:
                    break
                dst.write(chunk)
        n += 1
print(n)
`;

/** Unpacks part of `wheel` into `dest` (see EXTRACT_PY); returns the number of files. */
function extractWheel(python, wheel, dest, mode) {
  const r = cp.spawnSync(python, ['-c', EXTRACT_PY, wheel, dest, mode], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`extracting ${wheel} failed: ${r.stderr.trim().split('\n').pop()}`);
  return Number(r.stdout.trim());
}

/** The defined dynamic symbols of the given libraries (empty string when `nm` is missing). */
function definedSymbols(libPaths) {
  let text = '';
  for (const lib of libPaths) {
    const r = cp.spawnSync('nm', ['-D', '--defined-only', lib], { encoding: 'utf8', maxBuffer: 1 << 30 });
    if (r.status !== 0) return '';
    text += r.stdout;
  }
  return text;
}

/** Checks that the two libraries together export the C functions the binding calls. */
function exportsCApi(libPaths) {
  const text = definedSymbols(libPaths);
  if (!text) return { checked: false };
  const needed = ['TF_NewStatus', 'TF_Version', 'TFE_NewContext', 'TFE_Execute', 'TFE_NewOp', 'TF_AllocateTensor'];
  const missing = needed.filter((s) => !new RegExp(` T ${s}(@@?\\S+)?$`, 'm').test(text));
  return { checked: true, missing };
}

function linkOrCopy(src, dst) {
  fs.rmSync(dst, { force: true });
  try {
    fs.linkSync(src, dst);
  } catch {
    fs.copyFileSync(src, dst);
  }
}

function symlink(target, at) {
  fs.rmSync(at, { force: true });
  fs.symlinkSync(target, at);
}

/**
 * Places a cached runtime (lib/, include/, optionally nvidia/) in `<pkgDir>/deps`,
 * where tfjs-node's install script and its binding look, and writes `manifest`
 * to deps/selfsup-runtime.json. Files are hard links into the cache when the
 * cache is on the same file system (no extra disk), else copies.
 */
function stageRuntime(runtimeDir, pkgDir, manifest) {
  const deps = path.join(pkgDir, 'deps');
  const lib = path.join(deps, 'lib');
  fs.mkdirSync(lib, { recursive: true });
  const main = `libtensorflow.so.${TFJS_LIB_VERSION}`;
  linkOrCopy(
    path.join(runtimeDir, 'lib', 'libtensorflow_framework.so.2'),
    path.join(lib, 'libtensorflow_framework.so.2'),
  );
  const nvidia = path.join(runtimeDir, 'nvidia');
  if (fs.existsSync(nvidia)) {
    // TensorFlow's CUDA build finds the CUDA libraries through its RUNPATH
    // ($ORIGIN/../nvidia/<part>/lib), so they go next to deps/lib.
    for (const part of fs.readdirSync(nvidia)) {
      const from = path.join(nvidia, part, 'lib');
      const to = path.join(deps, 'nvidia', part, 'lib');
      fs.mkdirSync(to, { recursive: true });
      for (const f of fs.readdirSync(from)) linkOrCopy(path.join(from, f), path.join(to, f));
    }
  }
  // Written last: its presence is what tells tfjs-node the runtime is ready.
  linkOrCopy(path.join(runtimeDir, 'lib', 'libtensorflow_cc.so.2'), path.join(lib, `${main}.partial`));
  symlink(main, path.join(lib, 'libtensorflow.so'));
  symlink(main, path.join(lib, 'libtensorflow_cc.so.2')); // the library's SONAME
  symlink('libtensorflow_framework.so.2', path.join(lib, 'libtensorflow_framework.so'));
  fs.rmSync(path.join(deps, 'include'), { recursive: true, force: true });
  fs.cpSync(path.join(runtimeDir, 'include'), path.join(deps, 'include'), { recursive: true });
  fs.writeFileSync(
    path.join(deps, 'selfsup-runtime.json'),
    `${JSON.stringify({ ...manifest, runtimeDir }, null, 2)}\n`,
  );
  fs.renameSync(path.join(lib, `${main}.partial`), path.join(lib, main));
}

module.exports = {
  TFJS_LIB_VERSION,
  log,
  block,
  findPackageDir,
  cacheRoot,
  findPython,
  requirePython,
  pipDownload,
  extractWheel,
  definedSymbols,
  exportsCApi,
  stageRuntime,
};
