'use strict';
/*
 * Where @tensorflow/tfjs-node keeps the TensorFlow C headers and library
 * (deps/include, deps/lib), for binding.gyp: `node paths.cjs include|lib`.
 */
const path = require('node:path');
const { findPackageDir } = require('../tensorflow-runtime/lib.cjs');

function tfjsNodeDeps() {
  const dir = findPackageDir('@tensorflow/tfjs-node', __dirname);
  if (!dir) throw new Error('@tensorflow/tfjs-node is not installed');
  return path.join(dir, 'deps');
}

module.exports = { tfjsNodeDeps };

if (require.main === module) {
  const which = process.argv[2];
  if (which !== 'include' && which !== 'lib') {
    process.stderr.write('usage: node paths.cjs include|lib\n');
    process.exit(2);
  }
  process.stdout.write(path.join(tfjsNodeDeps(), which));
}
