/**
 * Checks the browser snippet (scripts/interop/browser/): serves a tfjs export,
 * the page, embed.js and tf.min.js on 127.0.0.1, loads the model over HTTP with
 * TensorFlow.js's pure-JS backend (as a browser without WebGL would) through the
 * page's own embed.js, embeds ten demo images, and compares with the features
 * `selfsup embed` computed on native TensorFlow (max difference <= 1e-4).
 *
 *   npm run build
 *   node scripts/interop/check-browser.mjs [backbone dir or run]   # default: a fresh narrow ResNet-18
 */
import { spawnSync } from 'node:child_process';
import {
  copyFileSync,
  createReadStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
} from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const cli = (args) => {
  const r = spawnSync(process.execPath, [path.join(root, 'bin/selfsup.js'), ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`selfsup ${args.join(' ')} failed (${r.status}):\n${r.stderr}`);
  return r.stdout;
};

await tf.setBackend('cpu');
const work = mkdtempSync(path.join(os.tmpdir(), 'selfsup-browser-'));
let server;
try {
  let source = process.argv[2];
  if (!source) {
    const { createBackbone } = await import(path.join(root, 'dist/src/backbones/registry.js'));
    const { saveBackbone } = await import(path.join(root, 'dist/src/export/backbone-store.js'));
    source = path.join(work, 'backbone');
    const backbone = createBackbone('resnet18', { inputChannels: 1, stem: 'small', widthMultiplier: 0.25, seed: 9 });
    await saveBackbone(backbone, source, { inputSize: 28, mean: [0.286], std: [0.353], pretextTask: 'random-init' });
    backbone.dispose();
  }
  // The page's folder: index.html, embed.js, tf.min.js and model/ (the tfjs export).
  const site = path.join(work, 'site');
  mkdirSync(site);
  for (const file of ['index.html', 'embed.js'])
    copyFileSync(path.join(root, 'scripts/interop/browser', file), path.join(site, file));
  copyFileSync(path.join(root, 'node_modules/@tensorflow/tfjs/dist/tf.min.js'), path.join(site, 'tf.min.js'));
  cli(['export', source, '--format', 'tfjs', '--out', path.join(site, 'model'), '--quiet']);

  // Ten demo images (one per class) and selfsup's own features for them.
  const test = path.join(root, 'data/fashion-mnist-demo/test');
  const images = path.join(work, 'images');
  mkdirSync(images);
  for (const cls of readdirSync(test).sort()) {
    const first = readdirSync(path.join(test, cls)).sort()[0];
    copyFileSync(path.join(test, cls, first), path.join(images, `${cls}.png`));
  }
  cli(['embed', source, '--data', images, '--out', path.join(work, 'embed'), '--no-map', '--quiet']);
  const { readEmbeddings } = await import(path.join(root, 'dist/src/export/embeddings.js'));
  const expected = readEmbeddings(path.join(work, 'embed', 'embeddings.arrow'));

  server = http.createServer((request, response) => {
    const file = path.join(site, decodeURIComponent(new URL(request.url, 'http://x').pathname));
    if (!file.startsWith(site) || !existsSync(file) || !statSync(file).isFile()) {
      response.writeHead(404).end();
      return;
    }
    response.writeHead(200);
    createReadStream(file).pipe(response);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${server.address().port}`;
  const page = await (await fetch(`${base}/index.html`)).text();
  if (!page.includes("from './embed.js'") || !page.includes('tf.min.js'))
    throw new Error('index.html does not load embed.js and tf.min.js');

  const { loadEmbedder } = await import(pathToFileURL(path.join(site, 'embed.js')).href);
  const embedder = await loadEmbedder(tf, `${base}/model/model.json`);
  let worst = 0;
  for (let i = 0; i < expected.paths.length; i++) {
    const { data, info } = await sharp(expected.paths[i]).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
    const vector = embedder.embedRgba(data, info.width, info.height);
    const reference = expected.vectors.subarray(i * expected.dim, (i + 1) * expected.dim);
    for (let d = 0; d < expected.dim; d++) worst = Math.max(worst, Math.abs(vector[d] - reference[d]));
  }
  embedder.dispose();
  const m = embedder.manifest;
  console.log(
    `loaded ${base}/model/model.json with tf.loadLayersModel (backend ${tf.getBackend()}): ${m.architecture}, ` +
      `${m.featureDim}-d features; ${expected.paths.length} images`,
  );
  console.log(`max |browser path - selfsup embed| = ${worst.toExponential(2)} (tolerance 1e-4)`);
  if (!(worst <= 1e-4)) process.exitCode = 1;
  else console.log('OK');
} finally {
  server?.close();
  rmSync(work, { recursive: true, force: true });
}
