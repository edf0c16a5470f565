/**
 * PyTorch checkpoints written by torch.save itself (scripts/torch/make_checkpoints.py,
 * torch 1.13): each format and layout imports and gives PyTorch's eval features and
 * logits; the re-exported safetensors holds exactly torchvision's backbone keys with
 * the checkpoint's values; hostile pickles are refused before anything runs.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { main } from '../../src/cli/main.js';
import { initEngine } from '../../src/engine/backend.js';
import { exportBackbone, loadBackbone } from '../../src/export/backbone-store.js';
import {
  openTorchCheckpoint,
  TorchStorage,
  TorchTensor,
  withTorchCheckpoint,
} from '../../src/export/pytorch/checkpoint.js';
import { findBackbones, flattenTensors, pickBackbone } from '../../src/export/pytorch/find-backbone.js';
import { unpickle } from '../../src/export/pytorch/unpickle.js';
import { entryToFloat32, readSafetensors } from '../../src/export/safetensors.js';

const FIXTURES = path.join(import.meta.dirname, '..', 'fixtures', 'torch', 'checkpoints');
const fixture = (name: string) => path.join(FIXTURES, name);
const expected = readSafetensors(fixture('expected.safetensors'));
const ref = (key: string) => entryToFloat32(expected.tensors.get(key)!);
const work = mkdtempSync(path.join(os.tmpdir(), 'selfsup-torch-ckpt-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
beforeAll(() => {
  expect(initEngine().backend).toBe('tensorflow');
});

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Imports `target`, runs the fixture input in eval mode, returns features and logits (when an fc came along). */
async function run(target: string, key?: string) {
  const loaded = await loadBackbone(target, { key });
  try {
    const input = expected.tensors.get('input')!; // NCHW
    const before = tf.memory().numTensors;
    const out = tf.tidy(() => {
      const x = tf.tensor4d(entryToFloat32(input), input.shape as [number, number, number, number]);
      const f = loaded.backbone.features(x.transpose([0, 2, 3, 1]) as tf.Tensor4D, false);
      const fc = loaded.fc;
      const logits = fc
        ? tf
            .add(tf.matMul(f, tf.tensor2d(fc.weight, [fc.inputDim, fc.outputDim])), fc.bias)
            .dataSync()
            .slice()
        : undefined;
      return { features: f.dataSync().slice(), logits };
    });
    expect(tf.memory().numTensors).toBe(before);
    return { ...out, loaded };
  } finally {
    loaded.backbone.dispose();
  }
}

const CASES: Array<{ file: string; tag: string; backboneKey: string; fc: boolean; key?: string }> = [
  { file: 'r18-zip.pth', tag: 'f32', backboneKey: '(top level)', fc: true },
  { file: 'r18-legacy.pth', tag: 'f32', backboneKey: '(top level)', fc: true },
  { file: 'r18-deflated.pth', tag: 'f32', backboneKey: '(top level)', fc: true },
  { file: 'r18-views.pth', tag: 'f32', backboneKey: '(top level)', fc: true },
  { file: 'r18-half.pth', tag: 'f16', backboneKey: '(top level)', fc: true },
  { file: 'r18-bf16.pth', tag: 'bf16', backboneKey: '(top level)', fc: true },
  { file: 'r18-dataparallel.pth', tag: 'f32', backboneKey: 'module', fc: true },
  { file: 'r18-lightning.ckpt', tag: 'f32', backboneKey: 'state_dict.backbone', fc: false },
  { file: 'r18-lightly.ckpt', tag: 'f32', backboneKey: 'state_dict.backbone', fc: false },
  { file: 'r18-moco.pth', tag: 'f32', backboneKey: 'state_dict.module.encoder_q', fc: false, key: 'encoder_q' },
];

describe('PyTorch checkpoints (written by torch.save) give PyTorch outputs', () => {
  for (const c of CASES) {
    it(`${c.file}: eval features${c.fc ? ' and logits' : ''} within 1e-4`, async () => {
      const { features, logits, loaded } = await run(fixture(c.file), c.key);
      expect(loaded.format).toBe('pytorch');
      expect(loaded.found?.backboneKey).toBe(c.backboneKey);
      expect(loaded.manifest).toMatchObject({ architecture: 'resnet18', stem: 'imagenet', widthMultiplier: 1 / 16 });
      expect(maxAbsDiff(features, ref(`${c.tag}.features`))).toBeLessThan(1e-4);
      if (c.fc) expect(maxAbsDiff(logits!, ref(`${c.tag}.logits`))).toBeLessThan(1e-4);
      else expect(logits).toBeUndefined();
      // torchvision's preprocessing travels with the weights.
      expect(loaded.manifest).toMatchObject({
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
        inputSize: 224,
      });
      expect(loaded.manifest.numBatchesTracked).toBe(7);
    });
  }

  it('the Lightning checkpoint: backbone found beside a projection head and optimizer state, head left out', async () => {
    const { loaded } = await run(fixture('r18-lightning.ckpt'));
    expect(loaded.found?.ignored.sort()).toEqual([
      'projection_head.layers.0.bias',
      'projection_head.layers.0.weight',
      'projection_head.layers.2.bias',
      'projection_head.layers.2.weight',
    ]);
    withTorchCheckpoint(fixture('r18-lightning.ckpt'), (checkpoint) => {
      const root = checkpoint.root as Map<string, unknown>;
      expect(root.get('epoch')).toBe(3);
      expect((root.get('hyper_parameters') as Map<string, unknown>).get('temperature')).toBe(0.5);
      const optimizer = (root.get('optimizer_states') as Array<Map<string, unknown>>)[0];
      const state = optimizer.get('state') as Map<number, Map<string, unknown>>;
      expect(state.get(0)?.get('momentum_buffer')).toBeInstanceOf(TorchTensor);
    });
  });

  it('several backbones (MoCo encoder_q / encoder_k): an error lists them; --key or #key picks one', async () => {
    await expect(loadBackbone(fixture('r18-moco.pth'))).rejects.toThrow(
      /holds 2 backbones: "state_dict\.module\.encoder_q" \(\d+ tensors\), "state_dict\.module\.encoder_k" \(\d+ tensors\); pick one with --key/,
    );
    await expect(loadBackbone(fixture('r18-moco.pth'), { key: 'queue' })).rejects.toThrow(
      /--key "queue" matches no backbone/,
    );
    const viaHash = await run(`${fixture('r18-moco.pth')}#encoder_k`);
    expect(viaHash.loaded.found?.backboneKey).toBe('state_dict.module.encoder_k');
    expect(viaHash.loaded.found?.ignored).toEqual(['queue']);
    // encoder_k holds other weights: its features differ from encoder_q's.
    expect(maxAbsDiff(viaHash.features, ref('f32.features'))).toBeGreaterThan(1e-3);
  });

  it('shared storages and non-contiguous views are read through their strides and offsets', () => {
    withTorchCheckpoint(fixture('r18-views.pth'), (views) => {
      withTorchCheckpoint(fixture('r18-zip.pth'), (plain) => {
        const a = flattenTensors(views.root);
        const b = flattenTensors(plain.root);
        const conv = a.get('layer2.0.conv1.weight')!;
        expect(conv.contiguous).toBe(false);
        expect(a.get('bn1.weight')!.storage).toBe(a.get('layer4.1.bn2.running_var')!.storage);
        expect(a.get('layer4.1.bn2.running_var')!.storageOffset).toBeGreaterThan(0);
        expect(views.storages.size).toBeLessThan(plain.storages.size);
        for (const [name, tensor] of b) {
          const x = views.readTensor(a.get(name)!, name);
          const y = plain.readTensor(tensor, name);
          expect(x.shape).toEqual(y.shape);
          expect(Buffer.from(x.bytes).equals(Buffer.from(y.bytes))).toBe(true);
        }
      });
    });
  });

  it('re-exports to safetensors with exactly torchvision backbone keys and the checkpoint values', async () => {
    const backboneKeys = JSON.parse(expected.metadata.backbone_keys) as string[];
    for (const name of ['r18-legacy.pth', 'r18-lightning.ckpt', 'r18-dataparallel.pth']) {
      const out = path.join(work, `${name}.safetensors`);
      await exportBackbone(fixture(name), 'safetensors', out);
      const written = readSafetensors(out);
      const keys = [...written.tensors.keys()].filter((k) => !k.startsWith('fc.'));
      expect(keys.sort()).toEqual([...backboneKeys].sort());
      withTorchCheckpoint(fixture('r18-zip.pth'), (checkpoint) => {
        const original = flattenTensors(checkpoint.root);
        for (const key of backboneKeys) {
          const want = checkpoint.readTensor(original.get(key)!, key);
          const got = written.tensors.get(key)!;
          expect(got.shape).toEqual(want.shape);
          expect(maxAbsDiff(entryToFloat32(got), entryToFloat32(want))).toBe(0);
        }
      });
    }
  });
});

describe('hostile and broken files', () => {
  for (const [kind, global] of [
    ['os-system', 'posix.system'],
    ['builtins-eval', 'builtins.eval'],
    ['subprocess-popen', 'subprocess.Popen'],
  ]) {
    it(`a pickle calling ${global} is refused and its payload does not run`, async () => {
      const marker = `/tmp/selfsup-pickle-payload-${kind}`;
      rmSync(marker, { force: true });
      await expect(loadBackbone(fixture(`evil-${kind}.pth`))).rejects.toThrow(`refused to load the global "${global}"`);
      expect(() => openTorchCheckpoint(fixture(`evil-${kind}.pth`))).toThrow(`"${global}"`);
      await new Promise((r) => setTimeout(r, 200));
      expect(existsSync(marker)).toBe(false);
    });
  }

  const pickle = (...parts: Array<string | number[]>) =>
    Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'latin1') : Buffer.from(p))));
  const options = { file: 'test.pkl', globals: () => undefined };

  it('refuses globals however they are reached (GLOBAL, STACK_GLOBAL, INST, EXT) and names them', () => {
    expect(() => unpickle(pickle([0x80, 2], 'cos\nsystem\nX', [2, 0, 0, 0], 'ls', [0x85], 'R.'), options)).toThrow(
      'test.pkl: refused to load the global "os.system"',
    );
    const stackGlobal = pickle([0x80, 4, 0x8c, 8], 'builtins', [0x8c, 4], 'exec', [0x93], 'N.');
    expect(() => unpickle(stackGlobal, options)).toThrow('"builtins.exec"');
    expect(() => unpickle(pickle('(isubprocess\nPopen\n.'), options)).toThrow('"subprocess.Popen"');
    expect(() => unpickle(pickle([0x80, 2, 0x82, 1], '.'), options)).toThrow(/extension codes/);
  });

  it('hostile lengths and truncation are errors, not allocations', () => {
    expect(() => unpickle(pickle([0x80, 2, 0x58, 0xff, 0xff, 0xff, 0x7f], 'abc'), options)).toThrow(/truncated/);
    expect(() => unpickle(pickle([0x80, 4, 0x8e, 0, 0, 0, 0, 0, 0, 0, 0x40]), options)).toThrow(/exceeds/);
    expect(() => unpickle(pickle([0x80, 2, 0x5d]), options)).toThrow(/truncated/);
    expect(() => unpickle(pickle([0x80, 2, 0x68, 3, 0x2e]), options)).toThrow(/memo entry 3/);
    expect(unpickle(pickle([0x80, 2, 0x7d, 0x58, 1, 0, 0, 0], 'k', [0x4b, 5, 0x73, 0x2e]), options).value).toEqual(
      new Map([['k', 5]]),
    );
  });

  it('a cut-off checkpoint and a storage larger than the file are errors naming the file', () => {
    const bytes = readFileSync(fixture('r18-legacy.pth'));
    const cut = path.join(work, 'cut.pth');
    writeFileSync(cut, bytes.subarray(0, bytes.length - 1000));
    expect(() => openTorchCheckpoint(cut)).toThrow(new RegExp(`${cut}: storage "\\d+" declares \\d+ elements, beyond`));
    const zip = readFileSync(fixture('r18-zip.pth'));
    const cutZip = path.join(work, 'cut-zip.pth');
    writeFileSync(cutZip, zip.subarray(0, zip.length - 100));
    expect(() => openTorchCheckpoint(cutZip)).toThrow(/not a valid zip archive/);
    const notTorch = path.join(work, 'text.pth');
    writeFileSync(notTorch, 'hello');
    expect(() => openTorchCheckpoint(notTorch)).toThrow(/not a PyTorch checkpoint/);
  });

  it('finds no backbone in a file without one, and says what it looked for', () => {
    expect(() => pickBackbone(findBackbones(new Map()), 'x.pth')).toThrow(
      'x.pth: no ResNet backbone found: looked for torchvision/timm names',
    );
  });
});

describe('backbone finder', () => {
  it("reports layers a torchvision ResNet has no place for (timm's deep stem and average-pool shortcuts)", () => {
    const storage = new TorchStorage('0', 'F32', 1000);
    const t = (...shape: number[]) =>
      new TorchTensor(
        storage,
        0,
        shape,
        shape.map(() => 0),
        false,
      );
    const resnet50d = new Map<string, TorchTensor>([
      ['conv1.0.weight', t(32, 3, 3, 3)],
      ['conv1.1.weight', t(32)],
      ['conv1.3.weight', t(32, 32, 3, 3)],
      ['conv1.6.weight', t(64, 32, 3, 3)],
      ['bn1.weight', t(64)],
      ['layer1.0.conv1.weight', t(64, 64, 1, 1)],
      ['layer1.0.downsample.1.weight', t(256, 64, 1, 1)],
      ['layer1.0.downsample.2.weight', t(256)],
      ['fc.weight', t(1000, 2048)],
    ]);
    const found = findBackbones(resnet50d);
    expect(found.map((c) => c.name)).toEqual(['']);
    expect(() => pickBackbone(found, 'resnet50d.pth')).toThrow(
      'resnet50d.pth: backbone "(top level)" has layers a torchvision ResNet does not (conv1.0.weight, conv1.1.weight, conv1.3.weight, conv1.6.weight, ...)',
    );
  });

  it('names every candidate by its path', () => {
    withTorchCheckpoint(fixture('r18-moco.pth'), (checkpoint) => {
      const found = findBackbones(flattenTensors(checkpoint.root));
      expect(found.map((c) => c.name)).toEqual(['state_dict.module.encoder_q', 'state_dict.module.encoder_k']);
      expect(found[0].ignored).toEqual(['queue']);
    });
  });
});

describe('selfsup import / inspect with checkpoints', () => {
  /** Runs the CLI in process; returns the exit code and what it printed. */
  async function cli(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    let stdout = '';
    let stderr = '';
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      stdout += chunk.toString();
      return true;
    });
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      stderr += chunk.toString();
      return true;
    });
    try {
      return { code: await main(argv), stdout, stderr };
    } finally {
      vi.restoreAllMocks();
    }
  }

  it('import refuses a hostile pickle with exit code 1, naming the global; nothing is written or run', async () => {
    const marker = '/tmp/selfsup-pickle-payload-os-system';
    rmSync(marker, { force: true });
    const out = path.join(work, 'evil-out');
    const result = await cli('import', fixture('evil-os-system.pth'), '--out', out);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('refused to load the global "posix.system" (os.system)');
    expect(existsSync(out)).toBe(false);
    expect(existsSync(marker)).toBe(false);
    const inspected = await cli('inspect', fixture('evil-builtins-eval.pth'));
    expect(inspected.code).toBe(1);
    expect(inspected.stderr).toContain('"builtins.eval" (written as __builtin__.eval)');
  });

  it('inspect lists entries, tensors and the backbones it recognises', async () => {
    const result = await cli('inspect', fixture('r18-lightning.ckpt'), '--json');
    expect(result.code).toBe(0);
    const summary = JSON.parse(result.stdout);
    expect(summary.container).toBe('zip');
    expect(summary.entries).toMatchObject({ epoch: 'int 3', 'pytorch-lightning_version': 'str "2.1.0"' });
    expect(summary.backbones).toEqual([
      expect.objectContaining({
        key: 'state_dict.backbone',
        arch: 'resnet18',
        stem: 'imagenet',
        inputChannels: 3,
        widthMultiplier: 1 / 16,
        fcClasses: null,
      }),
    ]);
    const conv = summary.tensors.find((t: { name: string }) => t.name === 'state_dict.backbone.conv1.weight');
    expect(conv).toMatchObject({ dtype: 'F32', shape: [4, 3, 7, 7], contiguous: true });
    const text = await cli('inspect', fixture('r18-moco.pth'));
    expect(text.stdout).toContain('backbones (2; pick one with --key):');
    expect(text.stdout).toContain(
      '"state_dict.module.encoder_k": resnet18, stem imagenet, 3 channel(s), width x0.0625',
    );
  });

  it('import takes --key when a checkpoint holds several backbones, and records the source', async () => {
    const out = path.join(work, 'moco-q');
    const ambiguous = await cli('import', fixture('r18-moco.pth'), '--out', out);
    expect(ambiguous.code).toBe(1);
    expect(ambiguous.stderr).toContain('holds 2 backbones');
    const result = await cli('import', fixture('r18-moco.pth'), '--key', 'encoder_q', '--out', out, '--json');
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report.found.backboneKey).toBe('state_dict.module.encoder_q');
    expect(report.manifest).toMatchObject({
      pretextTask: 'imported',
      source: `${fixture('r18-moco.pth')}#state_dict.module.encoder_q`,
      inputSize: 224,
      mean: [0.485, 0.456, 0.406],
    });
    const reloaded = await run(out);
    expect(maxAbsDiff(reloaded.features, ref('f32.features'))).toBeLessThan(1e-4);
  });
});
