/** `selfsup import` / `selfsup export` through the CLI entry point (in process): outputs, exit codes, messages. */
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createBackbone } from '../../src/backbones/registry.js';
import { main } from '../../src/cli/main.js';
import { initEngine } from '../../src/engine/backend.js';
import { loadBackbone } from '../../src/export/backbone-store.js';
import { encodeSafetensors } from '../../src/export/safetensors.js';
import { backboneToStateDict } from '../../src/export/torchvision.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'selfsup-cli-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
beforeAll(() => {
  expect(initEngine().backend).toBe('tensorflow');
});
afterEach(() => vi.restoreAllMocks());

/** Runs the CLI and returns the exit code and what it printed on stdout/stderr. */
async function run(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
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
  const code = await main(argv);
  vi.restoreAllMocks();
  return { code, stdout, stderr };
}

describe('selfsup import / export', () => {
  it('imports a torchvision file with fc, exports it as safetensors and tfjs, all loading back', async () => {
    const source = createBackbone('resnet18', { stem: 'small', widthMultiplier: 0.125, seed: 2 });
    const file = path.join(work, 'torchvision.safetensors');
    const fc = { weight: new Float32Array(64 * 3).fill(0.5), bias: new Float32Array(3), inputDim: 64, outputDim: 3 };
    writeFileSync(file, encodeSafetensors(backboneToStateDict(source, { fc })));

    const dir = path.join(work, 'imported');
    const imported = await run('import', file, '--arch', 'resnet18', '--input-size', '32', '--out', dir, '--json');
    expect(imported.code).toBe(0);
    const report = JSON.parse(imported.stdout);
    expect(report.manifest).toMatchObject({ architecture: 'resnet18', stem: 'small', inputSize: 32, fcClasses: 3 });
    expect(readdirSync(dir).sort()).toEqual(['.selfsup-output.json', 'backbone.safetensors', 'manifest.json']);

    const tfjsDir = path.join(work, 'web');
    const exported = await run('export', dir, '--format', 'tfjs', '--out', tfjsDir);
    expect(exported.code).toBe(0);
    expect(exported.stdout).toContain(`as tfjs -> ${tfjsDir}`);
    expect(readdirSync(tfjsDir).sort()).toEqual(['.selfsup-output.json', 'manifest.json', 'model.json', 'weights.bin']);

    const onnxDir = path.join(work, 'onnx');
    const onnx = await run('export', dir, '--format', 'onnx', '--out', onnxDir);
    expect(onnx.code).toBe(0);
    expect(onnx.stdout).toContain(`exported resnet18 (stem small, 3 channel(s)) as onnx -> ${onnxDir}`);
    expect(readdirSync(onnxDir).sort()).toEqual(['.selfsup-output.json', 'manifest.json', 'model.onnx']);
    const again = await run('export', dir, '--format', 'onnx', '--out', onnxDir);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain(`--out ${onnxDir} already holds a selfsup backbone-onnx output; pass --overwrite`);
    expect((await run('export', dir, '--format', 'onnx', '--out', onnxDir, '--overwrite')).code).toBe(0);

    const single = path.join(work, 'r18.safetensors');
    expect((await run('export', tfjsDir, '--format', 'safetensors', '--out', single, '--dtype', 'f16')).code).toBe(0);
    expect(existsSync(path.join(work, 'r18.manifest.json'))).toBe(true);
    const loaded = await loadBackbone(single);
    expect(loaded.manifest.inputSize).toBe(32);
    loaded.backbone.dispose();
    source.dispose();
  });

  it('exits 2 on usage errors and 1 on bad files, naming the option or the file', async () => {
    const missingOut = await run('import', 'x.safetensors');
    expect(missingOut.code).toBe(2);
    expect(missingOut.stderr).toContain("required option '--out <dir>' not specified");

    const badFormat = await run('export', work, '--format', 'pt', '--out', path.join(work, 'o'));
    expect(badFormat.code).toBe(2);
    expect(badFormat.stderr).toContain(
      'Expected "safetensors", "tfjs" or "onnx" for --format but received "pt" (string)',
    );

    const softmax = await run('export', work, '--format', 'onnx', '--softmax', '--out', path.join(work, 'o'));
    expect(softmax.code).toBe(2);
    expect(softmax.stderr).toContain(
      '--softmax applies to --format onnx of a finetuned model folder (one with classifier.json)',
    );
    const bf16 = await run('export', work, '--format', 'onnx', '--dtype', 'bf16', '--out', path.join(work, 'o'));
    expect(bf16.code).toBe(2);
    expect(bf16.stderr).toContain('Expected "F32" or "F16" for --dtype (onnx) but received "bf16" (string)');

    const badChannels = await run('import', 'x.safetensors', '--channels', '2', '--out', path.join(work, 'o'));
    expect(badChannels.code).toBe(2);
    expect(badChannels.stderr).toContain('Expected 1 or 3 for --channels but received "2" (string)');

    const broken = path.join(work, 'broken.safetensors');
    writeFileSync(broken, new Uint8Array([255, 255, 255, 255, 255, 255, 255, 255, 1, 2]));
    const bad = await run('import', broken, '--arch', 'resnet18', '--out', path.join(work, 'o'));
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain(`${broken}: not a valid safetensors file: header length`);

    const absent = await run('export', path.join(work, 'nope'), '--format', 'tfjs', '--out', path.join(work, 'o'));
    expect(absent.code).toBe(1);
    expect(absent.stderr).toContain(`${path.join(work, 'nope')}: no such file or directory`);
    expect(existsSync(path.join(work, 'o'))).toBe(false);
  });
});
