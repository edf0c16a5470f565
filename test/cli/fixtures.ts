/**
 * Tiny inputs for CLI tests, made in-process: PNG class folders (generated
 * stripes), a broken PNG, and a backbone export (manifest.json + safetensors)
 * of a narrow ResNet-18.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { createBackbone } from '../../src/backbones/registry.js';
import { saveBackbone } from '../../src/export/backbone-store.js';
import { createRng } from '../../src/util/rng.js';

/** Writes `perClass` 16x16 grayscale PNGs into dir/<class>/ for two classes; returns the paths. */
export async function writeClassFolders(dir: string, perClass = 6, seed = 1): Promise<string[]> {
  const rng = createRng(seed);
  const files: string[] = [];
  for (const [c, name] of ['rows', 'columns'].entries()) {
    mkdirSync(path.join(dir, name), { recursive: true });
    for (let i = 0; i < perClass; i++) {
      const pixels = Buffer.alloc(256);
      for (let p = 0; p < 256; p++) {
        const on = c === 0 ? Math.floor(p / 16) % 4 < 2 : p % 4 < 2;
        pixels[p] = (on ? 190 : 40) + rng.int(50);
      }
      const file = path.join(dir, name, `${name}-${i}.png`);
      await sharp(pixels, { raw: { width: 16, height: 16, channels: 1 } })
        .png()
        .toFile(file);
      files.push(file);
    }
  }
  return files;
}

/** A file with a .png name that is not an image. */
export function writeBrokenPng(file: string): void {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0]));
}

/** A 1-channel small-stem ResNet-18 of width 1/8, saved as a backbone folder (backbone.safetensors + manifest.json). */
export async function writeTinyBackboneExport(dir: string, inputSize = 16): Promise<string> {
  const backbone = createBackbone('resnet18', { inputChannels: 1, stem: 'small', widthMultiplier: 0.125, seed: 3 });
  await saveBackbone(backbone, dir, { inputSize, pretextTask: 'random-init' });
  backbone.dispose();
  return dir;
}
