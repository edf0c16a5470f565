/** A tfjs model.json may only read regular files inside its own folder, with sizes checked first. */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBackbone } from '../../src/backbones/registry.js';
import { initEngine } from '../../src/engine/backend.js';
import { exportBackbone, saveBackboneTfjs } from '../../src/export/backbone-store.js';
import { readLayersModel } from '../../src/export/tfjs-model.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'selfsup-tfjs-paths-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

let exported: string;
beforeAll(async () => {
  initEngine({ quiet: true });
  const backbone = createBackbone('resnet18', { stem: 'small', inputChannels: 1, widthMultiplier: 0.125, seed: 3 });
  exported = path.join(work, 'export');
  await saveBackboneTfjs(backbone, exported);
  backbone.dispose();
});

/** A copy of the export in `models/<name>/` whose model.json lists `paths`. */
function withPaths(name: string, paths: string[]): string {
  const dir = path.join(work, 'models', name);
  mkdirSync(dir, { recursive: true });
  const json = JSON.parse(readFileSync(path.join(exported, 'model.json'), 'utf8'));
  json.weightsManifest[0].paths = paths;
  writeFileSync(path.join(dir, 'model.json'), JSON.stringify(json));
  writeFileSync(path.join(dir, 'weights.bin'), readFileSync(path.join(exported, 'weights.bin')));
  return path.join(dir, 'model.json');
}

describe('tfjs model.json weight paths', () => {
  it('refuses a path that leaves the folder, naming model.json and the path, without revealing the target', async () => {
    const secret = path.join(work, 'secret');
    mkdirSync(secret);
    writeFileSync(path.join(secret, 'private.bin'), readFileSync(path.join(exported, 'weights.bin')));
    const modelFile = withPaths('escape', ['../../secret/private.bin']);
    await expect(readLayersModel(modelFile)).rejects.toThrow(
      `${modelFile}: lists the weights file "../../secret/private.bin", which is outside ${path.dirname(modelFile)}; refusing to read it`,
    );
    // The export refuses too, and writes nothing.
    await expect(exportBackbone(modelFile, 'safetensors', path.join(work, 'stolen'))).rejects.toThrow(
      /outside .*refusing to read it/,
    );
  });

  it('refuses absolute paths and /dev/zero without reading them', async () => {
    const passwd = withPaths('absolute', ['/etc/passwd']);
    const error = await readLayersModel(passwd).catch((e: Error) => e);
    expect((error as Error).message).toBe(
      `${passwd}: lists the weights file "/etc/passwd", an absolute path; only paths inside ${path.dirname(passwd)} are read`,
    );
    expect((error as Error).message).not.toMatch(/bytes/);
    await expect(readLayersModel(withPaths('zero', ['/dev/zero']))).rejects.toThrow(/"\/dev\/zero", an absolute path/);
  });

  it('refuses a symlink inside the folder that points outside, and a special file inside', async () => {
    const modelFile = withPaths('link', ['./weights.link']);
    symlinkSync('/dev/zero', path.join(path.dirname(modelFile), 'weights.link'));
    await expect(readLayersModel(modelFile)).rejects.toThrow(
      `${modelFile}: lists the weights file "./weights.link", a symlink that leads outside`,
    );
    const fifoModel = withPaths('fifo', ['./pipe.bin']);
    execFileSync('mkfifo', [path.join(path.dirname(fifoModel), 'pipe.bin')]);
    await expect(readLayersModel(fifoModel)).rejects.toThrow(
      `${fifoModel}: lists the weights file "./pipe.bin", not a regular file (a FIFO (named pipe)); refusing to open it`,
    );
  });

  it('checks sizes against the manifest before reading', async () => {
    const modelFile = withPaths('big', ['./weights.bin', './extra.bin']);
    writeFileSync(path.join(path.dirname(modelFile), 'extra.bin'), Buffer.alloc(1000));
    await expect(readLayersModel(modelFile)).rejects.toThrow(/weights hold \d+ bytes but model.json describes \d+/);
  });

  it('still reads its own weights', async () => {
    const { model } = await readLayersModel(withPaths('ok', ['./weights.bin']));
    expect(model.outputs[0].shape).toEqual([null, 64]);
    model.dispose();
  });
});
