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
const https = require('node:https');
const {
  TFJS_LIB_VERSION,
  log,
  block,
  findPackageDir,
  cacheRoot,
  requirePython,
  pipDownload,
  extractWheel,
  exportsCApi,
  stageRuntime,
} = require('./lib.cjs');

const DEFAULT_WHEEL_VERSION = '2.12.0';
const OFFICIAL_URL =
  'https://storage.googleapis.com/tensorflow/libtensorflow/libtensorflow-cpu-linux-x86_64-2.9.1.tar.gz';

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

/** Fetches and unpacks the runtime into the cache; returns its directory. */
function ensureCachedRuntime(version) {
  const dir = path.join(cacheRoot(), 'tensorflow-runtime', `${version}-linux-x86_64`);
  if (fs.existsSync(path.join(dir, 'COMPLETE'))) {
    log(`using cached TensorFlow ${version} runtime in ${dir}`);
    return dir;
  }
  const python = requirePython();
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  const tmp = `${dir}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  try {
    let wheel = process.env.SELFSUP_TF_WHEEL;
    if (!wheel) {
      log(`fetching tensorflow-cpu==${version} with pip download (about 230 MB, once)`);
      wheel = pipDownload(python, [`tensorflow-cpu==${version}`], path.join(tmp, 'download'))[0];
      if (!wheel) throw new Error('pip download finished but left no .whl file');
    }
    log(`extracting the C runtime from ${path.basename(wheel)}`);
    extractWheel(python, wheel, tmp, 'tensorflow');
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

async function main() {
  const mode = (process.env.SELFSUP_TF_RUNTIME || 'auto').toLowerCase();
  if (mode === 'off' || mode === 'official') return;
  const tfjsNodeDir = findPackageDir('@tensorflow/tfjs-node');
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
    stageRuntime(dir, tfjsNodeDir, { source: 'tensorflow-cpu wheel', version });
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
