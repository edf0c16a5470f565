/**
 * Checks scripts/interop/load_in_pytorch.py: selfsup embeds a few demo images,
 * then PyTorch loads the same export (strict=True) and must produce the same
 * features within 1e-4.
 *
 *   npm run build
 *   node scripts/interop/check-pytorch.mjs [export dir]     # default: a fresh narrow ResNet-18 export
 *
 * PYTHON (default /usr/bin/python3) must have torch, torchvision, Pillow, numpy.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const dist = (p) => import(path.join(root, 'dist/src', p));
const { initEngine } = await dist('engine/backend.js');
const { loadBackbone, saveBackbone } = await dist('export/backbone-store.js');
const { createBackbone } = await dist('backbones/registry.js');
const { FileListSource } = await dist('data/datasets/file-list.js');
const { embedImages } = await dist('embed/embed-images.js');

initEngine();
const work = mkdtempSync(path.join(os.tmpdir(), 'selfsup-interop-'));
try {
  let exportDir = process.argv[2];
  if (!exportDir) {
    exportDir = path.join(work, 'export');
    const backbone = createBackbone('resnet18', { inputChannels: 1, stem: 'small', widthMultiplier: 0.25, seed: 5 });
    await saveBackbone(backbone, exportDir, { inputSize: 28, mean: [0.286], std: [0.353], pretextTask: 'random-init' });
    backbone.dispose();
  }
  // One test image per class of the shipped demo data.
  const test = path.join(root, 'data/fashion-mnist-demo/test');
  const paths = readdirSync(test)
    .sort()
    .map((cls) => path.join(test, cls, readdirSync(path.join(test, cls)).sort()[0]));
  const { backbone, manifest } = await loadBackbone(exportDir);
  const rows = await embedImages(backbone, new FileListSource(paths), {
    size: manifest.inputSize ?? 28,
    channels: manifest.inputChannels,
    mean: manifest.mean,
    std: manifest.std,
  });
  backbone.dispose();
  const features = [];
  for (let i = 0; i < rows.indices.length; i++)
    features.push(Array.from(rows.vectors.subarray(i * rows.dim, (i + 1) * rows.dim)));
  const expected = path.join(work, 'expected.json');
  writeFileSync(expected, JSON.stringify({ paths: rows.paths, features }));
  const python = process.env.PYTHON ?? '/usr/bin/python3';
  const script = path.join(root, 'scripts/interop/load_in_pytorch.py');
  const r = spawnSync(python, [script, exportDir, '--expected', expected], { stdio: 'inherit' });
  process.exitCode = r.status ?? 1;
} finally {
  rmSync(work, { recursive: true, force: true });
}
