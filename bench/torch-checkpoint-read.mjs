#!/usr/bin/env node
/**
 * Reading a ~100 MB PyTorch checkpoint: wall time and peak resident memory of
 * each step, each in its own child process so its peak RSS is its own:
 *
 *   inspect    the pickle only (what `selfsup inspect` does)
 *   read       every backbone tensor into memory (readTorchBackbone)
 *   load       into a TensorFlow backbone (loadBackbone, what `selfsup import` does)
 *
 * The checkpoint is torchvision's ResNet-50 state_dict (25.6 M parameters,
 * ~102 MB) saved by PyTorch; it is written once with Debian's python3-torch
 * when missing (or pass your own file; --legacy writes the pre-1.6 format).
 *
 *   npm run build && nice -n 10 flock /tmp/heavy.lock node bench/torch-checkpoint-read.mjs [file.pth] [--legacy]
 */
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);

if (args[0] === '--child') {
  const [, step, file] = args;
  // Modules first (tfjs is among them), so the figures are the step's own.
  const { inspectCheckpoint } = await import(path.join(root, 'dist/src/export/pytorch/inspect.js'));
  const { readTorchBackbone } = await import(path.join(root, 'dist/src/export/pytorch/read-backbone.js'));
  const { initEngine } = await import(path.join(root, 'dist/src/engine/index.js'));
  const { loadBackbone } = await import(path.join(root, 'dist/src/export/backbone-store.js'));
  if (step === 'load') initEngine({ quiet: true });
  const baseline = process.resourceUsage().maxRSS * 1024;
  const started = performance.now();
  let detail = '';
  if (step === 'inspect') {
    const summary = inspectCheckpoint(file);
    detail = `${summary.tensors.length} tensors, backbones: ${summary.backbones.map((b) => `${b.key} ${b.arch}`).join(', ')}`;
  } else if (step === 'read') {
    const contents = readTorchBackbone(file);
    let bytes = 0;
    for (const entry of contents.tensors.values()) bytes += entry.bytes.length;
    detail = `${contents.tensors.size} tensors, ${(bytes / 2 ** 20).toFixed(1)} MB read`;
  } else {
    const loaded = await loadBackbone(file);
    detail = `${loaded.manifest.architecture}, ${loaded.fc ? `fc ${loaded.fc.outputDim}` : 'no fc'}`;
    loaded.backbone.dispose();
  }
  const seconds = (performance.now() - started) / 1000;
  const peak = process.resourceUsage().maxRSS * 1024;
  console.log(JSON.stringify({ step, seconds, baseline, peak, detail }));
  process.exit(0);
}

const legacy = args.includes('--legacy');
let file = args.find((a) => !a.startsWith('--'));
if (!file) {
  file = path.join(os.tmpdir(), `selfsup-bench-resnet50${legacy ? '-legacy' : ''}.pth`);
  if (!existsSync(file)) {
    const python = [
      'import sys, torch, torchvision',
      'torch.manual_seed(0)',
      `torch.save(torchvision.models.resnet50().state_dict(), sys.argv[1]${legacy ? ', _use_new_zipfile_serialization=False' : ''})`,
    ].join('\n');
    const made = spawnSync('/usr/bin/python3', ['-c', python, file], { stdio: 'inherit' });
    if (made.status !== 0) throw new Error('could not write the checkpoint with python3-torch; pass a .pth file');
  }
}
const size = statSync(file).size;
const mb = (n) => `${(n / 2 ** 20).toFixed(0)} MB`;
console.log(`${file}: ${mb(size)} (${legacy ? 'legacy' : 'zip or as given'})`);
for (const step of ['inspect', 'read', 'load']) {
  const child = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child', step, file], {
    encoding: 'utf8',
  });
  if (child.status !== 0) throw new Error(child.stderr);
  const r = JSON.parse(child.stdout.trim().split('\n').pop());
  console.log(
    `${step.padEnd(8)} ${r.seconds.toFixed(2)} s   peak RSS ${mb(r.peak)} (before the step, modules loaded${step === 'load' ? ' and TensorFlow started' : ''}: ${mb(r.baseline)}; ` +
      `growth ${mb(r.peak - r.baseline)} = ${((r.peak - r.baseline) / size).toFixed(2)} x file)   ${r.detail}`,
  );
}
