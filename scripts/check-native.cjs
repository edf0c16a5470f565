#!/usr/bin/env node
/*
 * Root postinstall: checks, in a child process, that @tensorflow/tfjs-node loads
 * and runs on native TensorFlow. Never fails the install; when native TensorFlow
 * is missing it prints one block that says why and how to get it.
 */
'use strict';
const cp = require('node:child_process');

const probe = `
const tf = require('@tensorflow/tfjs-node');
const x = tf.ones([1, 4, 4, 1]);
const y = tf.conv2d(x, tf.ones([3, 3, 1, 1]), 1, 'same').sum().dataSync()[0];
process.stdout.write(JSON.stringify({ backend: tf.getBackend(), tf: tf.backend().binding.TF_Version, check: y }));
`;
const r = cp.spawnSync(process.execPath, ['-e', probe], {
  encoding: 'utf8',
  env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '2' },
  timeout: 120000,
});
let info;
try {
  info = JSON.parse(r.stdout);
} catch {
  info = undefined;
}
if (r.status === 0 && info && info.backend === 'tensorflow' && info.check === 100) {
  process.stderr.write(`selfsup: native TensorFlow ${info.tf} ready (tfjs backend "tensorflow")\n`);
} else {
  const lines = (r.stderr || r.error?.message || 'unknown').trim().split('\n').filter(Boolean);
  const errorLines = lines.filter((l) => /Error|error:|cannot|not found/i.test(l) && !/^\s+at /.test(l));
  const reason = (errorLines.length ? errorLines : lines).slice(0, 3);
  const bar = '='.repeat(78);
  process.stderr.write(
    [
      '',
      bar,
      ' selfsup: native TensorFlow is NOT available',
      bar,
      ' @tensorflow/tfjs-node could not be loaded, so selfsup would fall back to',
      ' pure-JS TensorFlow.js, which trains about 4000x slower. selfsup refuses long',
      ' runs on it unless you pass --allow-slow-backend.',
      ' Last error lines:',
      ...reason.map((l) => `   ${l.slice(0, 200)}`),
      ' How to get it (details in docs/install.md):',
      '  - check the "[selfsup runtime]" lines above for why staging failed',
      '  - you need python3 with pip, g++ and make; then run: npm ci',
      '  - or point TFJS_NODE_BASE_URI at a libtensorflow mirror and run: npm ci',
      '  - npm 11 skips install scripts of dependencies not approved in allowScripts;',
      '    as a dependency, approve and rebuild:',
      '      npm install-scripts approve selfsup @tensorflow/tfjs-node',
      '      npm rebuild selfsup @tensorflow/tfjs-node',
      bar,
      '',
    ].join('\n'),
  );
}
