#!/usr/bin/env node
/*
 * Stages the TensorFlow C runtime that @tensorflow/tfjs-node links against.
 *
 * tfjs-node's own install script downloads libtensorflow from a cloud bucket.
 * Where that download is unreachable, this script takes the same C API from a
 * `tensorflow-cpu` wheel fetched with `pip download` (never installed into
 * Python), caches it outside the project and places it where tfjs-node's
 * install script looks first (`deps/lib/libtensorflow.so.2.9.1`). tfjs-node
 * then compiles its binding from source with node-gyp.
 *
 * npm runs every dependency's `preinstall` before any dependency's `install`
 * script (tfjs-node's among them), so this runs as a `preinstall`: of selfsup
 * itself when selfsup is installed as a dependency, and of the repository-only
 * dev dependency `@selfsup/tensorflow-runtime` (this folder, copied into
 * node_modules by `install-links=true` in .npmrc) in a clone, where the root
 * project's own scripts run only after all dependencies are built.
 *
 * Environment:
 *   SELFSUP_TF_RUNTIME      auto (default) | wheel | official | off
 *   SELFSUP_TF_WHEEL_VERSION  tensorflow-cpu version to take (default below)
 *   SELFSUP_TF_WHEEL          path of an already downloaded wheel file
 *   SELFSUP_CACHE_DIR       cache root (default $XDG_CACHE_HOME/selfsup or ~/.cache/selfsup)
 *   TFJS_NODE_BASE_URI      a mirror for the official download (then this script does nothing)
 *
 * It never fails the install: on any problem it prints one block saying why
 * and how to fix it, and leaves tfjs-node to its own devices.
 */
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const os = require('node:os');
const cp = require('node:child_process');
const https = require('node:https');

const DEFAULT_WHEEL_VERSION = '2.12.0';
const TFJS_LIB_VERSION = '2.9.1';
const OFFICIAL_URL =
  'https://storage.googleapis.com/tensorflow/libtensorflow/libtensorflow-cpu-linux-x86_64-2.9.1.tar.gz';

const log = (msg) => process.stderr.write(`[selfsup runtime] ${msg}\n`);

function block(title, lines) {
  const bar = '='.repeat(78);
  process.stderr.write(`\n${bar}\n selfsup: ${title}\n${bar}\n${lines.map((l) => ` ${l}`).join('\n')}\n${bar}\n\n`);
}

/**
 * Finds an installed package the way Node would from `from`: the nearest
 * node_modules/<name> walking up. Works for this file inside the repo
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

function findTfjsNode() {
  return findPackageDir('@tensorflow/tfjs-node');
}

function cacheRoot() {
  if (process.env.SELFSUP_CACHE_DIR) return process.env.SELFSUP_CACHE_DIR;
  const xdg = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(xdg, 'selfsup');
}

function probeOfficial(timeoutMs) {
  return new Promise((resolve) => {
    const req = https.request(OFFICIAL_URL, { method: 'HEAD', timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => {
      req.destroy();
      resolve(false);
    });
    req.on('error', () => resolve(false));
    req.end();
  });
}

function findPython() {
  for (const exe of [process.env.PYTHON, 'python3', 'python'].filter(Boolean)) {
    const r = cp.spawnSync(exe, ['-c', 'import sys, pip; print(sys.version_info[0])'], { encoding: 'utf8' });
    if (r.status === 0 && r.stdout.trim() === '3') return exe;
  }
  return undefined;
}

const EXTRACT_PY = `
import sys, zipfile, os, fnmatch
wheel, dest = sys.argv[1], sys.argv[2]
keep = ['tensorflow/libtensorflow_cc.so.2', 'tensorflow/libtensorflow_framework.so.2',
        'tensorflow/include/tensorflow/c/*', 'tensorflow/include/tensorflow/tsl/c/*',
        'tensorflow/include/tsl/c/*', 'tensorflow/include/xla/tsl/c/*',
        'tensorflow/include/tsl/platform/ctstring*',
        'tensorflow/include/tensorflow/tsl/platform/ctstring*',
        'tensorflow/include/tensorflow/core/platform/ctstring*']
n = 0
with zipfile.ZipFile(wheel) as z:
    for info in z.infolist():
        if info.is_dir() or not any(fnmatch.fnmatch(info.filename, k) for k in keep):
            continue
        rel = info.filename[len('tensorflow/'):]
        rel = rel[len('include/'):] if rel.startswith('include/') else 'lib/' + rel
        out = os.path.join(dest, rel if rel.startswith('lib/') else os.path.join('include', rel))
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

/** Checks that the two libraries together export the C functions the binding calls. */
function exportsCApi(libPaths) {
  let text = '';
  for (const lib of libPaths) {
    const r = cp.spawnSync('nm', ['-D', '--defined-only', lib], { encoding: 'utf8', maxBuffer: 1 << 28 });
    if (r.status !== 0) return { checked: false };
    text += r.stdout;
  }
  const needed = ['TF_NewStatus', 'TF_Version', 'TFE_NewContext', 'TFE_Execute', 'TFE_NewOp', 'TF_AllocateTensor'];
  const missing = needed.filter((s) => !new RegExp(` T ${s}(@@?\\S+)?$`, 'm').test(text));
  return { checked: true, missing };
}

/** Fetches and unpacks the runtime into the cache; returns its directory. */
function ensureCachedRuntime(version) {
  const dir = path.join(cacheRoot(), 'tensorflow-runtime', `${version}-linux-x86_64`);
  if (fs.existsSync(path.join(dir, 'COMPLETE'))) {
    log(`using cached TensorFlow ${version} runtime in ${dir}`);
    return dir;
  }
  const python = findPython();
  if (!python)
    throw new Error('no Python 3 with pip was found (needed to run `pip download`); set PYTHON=/path/to/python3');
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  const tmp = `${dir}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  try {
    let wheel = process.env.SELFSUP_TF_WHEEL;
    if (!wheel) {
      const dl = path.join(tmp, 'download');
      log(`fetching tensorflow-cpu==${version} with pip download (about 230 MB, once)`);
      const args = [
        '-m',
        'pip',
        'download',
        '--no-deps',
        '--only-binary=:all:',
        '--python-version',
        '3.11',
        '--platform',
        'manylinux2014_x86_64',
        '--disable-pip-version-check',
        '-d',
        dl,
        `tensorflow-cpu==${version}`,
      ];
      const r = cp.spawnSync(python, args, { stdio: ['ignore', 'inherit', 'inherit'] });
      if (r.status !== 0) throw new Error(`\`${python} ${args.join(' ')}\` exited with ${r.status}`);
      wheel = fs
        .readdirSync(dl)
        .filter((f) => f.endsWith('.whl'))
        .map((f) => path.join(dl, f))[0];
      if (!wheel) throw new Error('pip download finished but left no .whl file');
    }
    log(`extracting the C runtime from ${path.basename(wheel)}`);
    const r = cp.spawnSync(python, ['-c', EXTRACT_PY, wheel, tmp], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`extracting ${wheel} failed: ${r.stderr.trim().split('\n').pop()}`);
    const lib = path.join(tmp, 'lib', 'libtensorflow_cc.so.2');
    if (!fs.existsSync(lib)) {
      throw new Error(
        `tensorflow-cpu ${version} has no libtensorflow_cc.so.2 (wheels before 2.12 keep the C API inside the Python extension); use 2.12 or newer`,
      );
    }
    const sym = exportsCApi([lib, path.join(tmp, 'lib', 'libtensorflow_framework.so.2')]);
    if (sym.checked && sym.missing.length)
      throw new Error(
        `libtensorflow_cc.so.2 of ${version} (with libtensorflow_framework.so.2) lacks ${sym.missing.join(', ')}`,
      );
    fs.rmSync(path.join(tmp, 'download'), { recursive: true, force: true });
    fs.writeFileSync(
      path.join(tmp, 'COMPLETE'),
      JSON.stringify({ version, source: 'tensorflow-cpu wheel', date: new Date().toISOString() }),
    );
    fs.rmSync(dir, { recursive: true, force: true });
    fs.renameSync(tmp, dir);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  return dir;
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

/** Places the cached runtime where tfjs-node's install script looks. */
function stage(runtimeDir, tfjsNodeDir, version) {
  const deps = path.join(tfjsNodeDir, 'deps');
  const lib = path.join(deps, 'lib');
  fs.mkdirSync(lib, { recursive: true });
  const main = `libtensorflow.so.${TFJS_LIB_VERSION}`;
  linkOrCopy(
    path.join(runtimeDir, 'lib', 'libtensorflow_framework.so.2'),
    path.join(lib, 'libtensorflow_framework.so.2'),
  );
  // Written last: its presence is what tells tfjs-node the runtime is ready.
  linkOrCopy(path.join(runtimeDir, 'lib', 'libtensorflow_cc.so.2'), path.join(lib, `${main}.partial`));
  symlink(main, path.join(lib, 'libtensorflow.so'));
  symlink(main, path.join(lib, 'libtensorflow_cc.so.2')); // the library's SONAME
  symlink('libtensorflow_framework.so.2', path.join(lib, 'libtensorflow_framework.so'));
  fs.rmSync(path.join(deps, 'include'), { recursive: true, force: true });
  fs.cpSync(path.join(runtimeDir, 'include'), path.join(deps, 'include'), { recursive: true });
  fs.writeFileSync(
    path.join(deps, 'selfsup-runtime.json'),
    `${JSON.stringify({ source: 'tensorflow-cpu wheel', version, runtimeDir }, null, 2)}\n`,
  );
  fs.renameSync(path.join(lib, `${main}.partial`), path.join(lib, main));
}

async function main() {
  const mode = (process.env.SELFSUP_TF_RUNTIME || 'auto').toLowerCase();
  if (mode === 'off' || mode === 'official') return;
  const tfjsNodeDir = findTfjsNode();
  if (!tfjsNodeDir) return; // tfjs-node not part of this install
  if (fs.existsSync(path.join(tfjsNodeDir, 'deps', 'lib', `libtensorflow.so.${TFJS_LIB_VERSION}`))) return;
  if (os.platform() !== 'linux' || os.arch() !== 'x64') {
    log(`no wheel route for ${os.platform()}-${os.arch()}; tfjs-node will use its official download`);
    return;
  }
  const baseUri = process.env.TFJS_NODE_BASE_URI || process.env.npm_config_tfjs_node_base_uri;
  if (mode === 'auto') {
    if (baseUri) {
      log('TFJS_NODE_BASE_URI is set: leaving the download to tfjs-node');
      return;
    }
    if (await probeOfficial(5000)) {
      log('official libtensorflow download is reachable: tfjs-node will use it');
      return;
    }
    log('official libtensorflow download is unreachable: taking the TensorFlow C runtime from a tensorflow-cpu wheel');
  }
  const version = process.env.SELFSUP_TF_WHEEL_VERSION || DEFAULT_WHEEL_VERSION;
  try {
    const dir = ensureCachedRuntime(version);
    stage(dir, tfjsNodeDir, version);
    log(`staged TensorFlow ${version} C runtime for @tensorflow/tfjs-node (its binding is compiled next)`);
  } catch (e) {
    block('could not stage the native TensorFlow runtime', [
      `Reason: ${e.message}`,
      'selfsup needs native TensorFlow (pure-JS TensorFlow.js is ~4000x slower at training).',
      'Ways to fix it (see docs/install.md):',
      ' - network that reaches the official download: SELFSUP_TF_RUNTIME=official npm ci',
      ' - a mirror of libtensorflow: TFJS_NODE_BASE_URI=<mirror>/libtensorflow- npm ci',
      ' - a wheel you already have: SELFSUP_TF_WHEEL=/path/tensorflow_cpu-2.12.0-...whl npm ci',
      ' - needs: python3 with pip, g++, make (to compile the tfjs-node binding)',
    ]);
  }
}

main().catch((e) => {
  log(`unexpected error: ${e?.stack ?? e}`);
});
