#!/usr/bin/env node
/*
 * Compiles selfsup's graph addon (graph_session.cc -> build/Release/selfsup_graph.node)
 * with node-gyp against the TensorFlow C library and headers of the installed
 * @tensorflow/tfjs-node (its deps/ folder), so both use one libtensorflow.
 * Runs from selfsup's postinstall (`npm run build:native` redoes it).
 *
 * It never fails the install: without the addon, training runs on the eager
 * path. On a problem it prints one line saying why and leaves the reason in
 * build/NOT-BUILT.txt, which `selfsup doctor` and the recipe key train.compile report.
 */
'use strict';
const cp = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { tfjsNodeDeps } = require('./paths.cjs');

const here = __dirname;
const buildDir = path.join(here, 'build');
const note = path.join(buildDir, 'NOT-BUILT.txt');

function nodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    path.join(
      path.dirname(process.execPath),
      '..',
      'lib',
      'node_modules',
      'npm',
      'node_modules',
      'node-gyp',
      'bin',
      'node-gyp.js',
    ),
  ];
  try {
    candidates.push(require.resolve('node-gyp/bin/node-gyp.js'));
  } catch {}
  return candidates.find((c) => c && fs.existsSync(c));
}

function fail(reason) {
  fs.mkdirSync(buildDir, { recursive: true });
  fs.writeFileSync(note, `${reason}\n`);
  process.stderr.write(`selfsup: graph addon not built (${reason}); training uses the eager path\n`);
}

function main() {
  fs.rmSync(note, { force: true });
  let deps;
  try {
    deps = tfjsNodeDeps();
  } catch (e) {
    return fail(e.message);
  }
  const lib = path.join(deps, 'lib');
  if (!fs.existsSync(path.join(lib, 'libtensorflow.so')) && !fs.existsSync(path.join(lib, 'libtensorflow.so.2'))) {
    return fail(`no TensorFlow C library in ${lib}`);
  }
  if (!fs.existsSync(path.join(deps, 'include', 'tensorflow', 'c', 'c_api.h'))) {
    return fail(`no TensorFlow C headers in ${path.join(deps, 'include')}`);
  }
  const gyp = nodeGyp();
  if (!gyp) return fail('node-gyp was not found (it ships with npm)');
  const args = [gyp, 'rebuild'];
  // Node's own headers when it ships them (<prefix>/include/node), so node-gyp downloads nothing.
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  const nodedir =
    process.env.npm_config_nodedir ||
    (fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h')) ? prefix : undefined);
  if (nodedir) args.push(`--nodedir=${nodedir}`);
  const r = cp.spawnSync(process.execPath, args, { cwd: here, encoding: 'utf8' });
  const built = path.join(buildDir, 'Release', 'selfsup_graph.node');
  if (r.status !== 0 || !fs.existsSync(built)) {
    const lines = `${r.stdout ?? ''}\n${r.stderr ?? ''}`.split('\n').filter((l) => /error/i.test(l));
    return fail(`node-gyp failed: ${(lines[0] ?? r.error?.message ?? `exit ${r.status}`).trim()}`);
  }
  process.stderr.write('selfsup: graph addon built (compiled training steps available)\n');
}

main();
