/** Non-finite weights, statistics and preprocessing are refused where they enter, naming the tensor or key. */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBackbone } from '../../src/backbones/registry.js';
import type { Backbone } from '../../src/backbones/types.js';
import { loadModelForEmbedding } from '../../src/embed/inputs.js';
import { initEngine } from '../../src/engine/backend.js';
import {
  loadBackbone,
  saveBackbone,
  saveBackboneSafetensorsFile,
  saveBackboneTfjs,
} from '../../src/export/backbone-store.js';
import { readManifest } from '../../src/export/manifest.js';
import { UsageError } from '../../src/util/errors.js';
import { writeTinyBackboneExport } from '../cli/fixtures.js';
import { ensureBuilt, runCli } from '../support/cli.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'selfsup-finite-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
beforeAll(async () => {
  initEngine({ quiet: true });
  await ensureBuilt();
}, 180_000);

function tiny(seed = 1): Backbone {
  return createBackbone('resnet18', { stem: 'small', inputChannels: 1, widthMultiplier: 0.125, seed });
}

/** Sets every value of the variable named `name` to `value`. */
function fill(backbone: Backbone, name: string, value: number): void {
  const found = backbone.variables().find((v) => v.name === name);
  if (!found) throw new Error(`no variable ${name}`);
  tf.tidy(() => found.variable.assign(tf.fill(found.variable.shape, value)));
}

describe('finite-number checks', () => {
  it('refuses all-NaN weights on load (safetensors folder, single file, tfjs), naming the tensor', async () => {
    const b = tiny();
    fill(b, 'layer2.0.conv1.weight', Number.NaN);
    const dir = path.join(work, 'nan-dir');
    await saveBackbone(b, dir);
    const file = path.join(work, 'nan.safetensors');
    await saveBackboneSafetensorsFile(b, file);
    const tfjs = path.join(work, 'nan-tfjs');
    await saveBackboneTfjs(b, tfjs);
    b.dispose();
    const before = tf.memory().numTensors;
    await expect(loadBackbone(dir)).rejects.toThrow(
      `${path.join(dir, 'backbone.safetensors')}: tensor "layer2.0.conv1.weight" holds 1152 non-finite value(s) (NaN or Infinity) of 1152, the first at index 0 (NaN): these weights cannot be used`,
    );
    await expect(loadBackbone(file)).rejects.toThrow(/tensor "layer2\.0\.conv1\.weight" holds 1152 non-finite/);
    await expect(loadBackbone(tfjs)).rejects.toThrow(
      `${path.join(tfjs, 'model.json')}: tensor "layer2.0.conv1.weight" holds 1152 non-finite`,
    );
    // Embedding never starts.
    await expect(loadModelForEmbedding(dir)).rejects.toThrow(/layer2\.0\.conv1\.weight/);
    expect(tf.memory().numTensors).toBe(before);
  });

  it('refuses an infinite BatchNorm statistic and a negative variance', async () => {
    const inf = tiny(2);
    fill(inf, 'bn1.running_mean', Number.POSITIVE_INFINITY);
    await saveBackbone(inf, path.join(work, 'inf'));
    inf.dispose();
    await expect(loadBackbone(path.join(work, 'inf'))).rejects.toThrow(
      'tensor "bn1.running_mean" holds 8 non-finite value(s) (NaN or Infinity) of 8, the first at index 0 (Infinity)',
    );
    const negative = tiny(3);
    fill(negative, 'layer1.1.bn2.running_var', -1);
    await saveBackbone(negative, path.join(work, 'negative'));
    negative.dispose();
    await expect(loadBackbone(path.join(work, 'negative'))).rejects.toThrow(
      'tensor "layer1.1.bn2.running_var" holds a negative variance (-1 at index 0)',
    );
  });

  it('refuses a manifest whose mean or std is not usable, naming the key, before any embedding', async () => {
    const dir = await writeTinyBackboneExport(path.join(work, 'manifest-bad'));
    const manifestFile = path.join(dir, 'manifest.json');
    const original = JSON.parse(readFileSync(manifestFile, 'utf8'));
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ mean: 'x' }, 'Expected a list of 1 finite number(s) for "mean" but received "x"'],
      [{ mean: [0.5, 0.5, 0.5] }, 'Expected a list of 1 finite number(s) for "mean" but received [0.5,0.5,0.5]'],
      [{ std: [0] }, 'Expected a list of 1 positive finite number(s) for "std" but received [0]'],
      [{ std: [-0.2] }, 'Expected a list of 1 positive finite number(s) for "std" but received [-0.2]'],
      [{ inputSize: 'big' }, 'Expected null or a positive integer for "inputSize" but received "big"'],
    ];
    for (const [change, message] of cases) {
      writeFileSync(manifestFile, JSON.stringify({ ...original, ...change }));
      expect(() => readManifest(manifestFile)).toThrow(`${manifestFile}: ${message}`);
      await expect(loadModelForEmbedding(dir)).rejects.toThrow(`${manifestFile}: ${message}`);
    }
  });

  it('refuses std 0 when a backbone is saved (the library) and selfsup import --std 0 (exit 2)', async () => {
    const b = tiny(4);
    await expect(saveBackbone(b, path.join(work, 'std0'), { std: [0] })).rejects.toThrow(UsageError);
    await expect(saveBackbone(b, path.join(work, 'std0'), { std: [0] })).rejects.toThrow(
      'Expected a list of 1 positive finite number(s) for std but received [0] (array)',
    );
    const file = path.join(work, 'ok.safetensors');
    await saveBackboneSafetensorsFile(b, file);
    b.dispose();
    const r = await runCli(['import', file, '--std', '0', '--out', path.join(work, 'imported')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('std');
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
  });
});
