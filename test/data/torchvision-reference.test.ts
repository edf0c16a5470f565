/**
 * Colour ops, blur and the antialiased resize against torchvision 0.14 numbers
 * (test/data/reference/make-torchvision-reference.py wrote the JSON).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  adjustBrightness,
  adjustContrast,
  adjustHue,
  adjustSaturation,
  gaussianBlur,
  solarize,
  toGrayscale,
} from '../../src/data/augment/color.js';
import { randomResizedCropBox } from '../../src/data/augment/geometry.js';
import { type FloatImage, resampleBox } from '../../src/data/augment/image.js';
import type { Rng } from '../../src/util/rng.js';

const reference = JSON.parse(
  readFileSync(path.join(import.meta.dirname, 'reference/torchvision.json'), 'utf8'),
) as Record<string, number[]>;

/** HWC float image from the same formula as the Python script. */
function image(height: number, width: number): FloatImage {
  const data = new Float32Array(height * width * 3);
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++)
      for (let c = 0; c < 3; c++) data[(y * width + x) * 3 + c] = ((x * 37 + y * 11 + c * 71) % 97) / 96;
  return { data, width, height, channels: 3 };
}

function expectClose(actual: Float32Array, expected: number[], tolerance: number): void {
  expect(actual.length).toBe(expected.length);
  let worst = 0;
  for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(actual[i] - expected[i]));
  expect(worst).toBeLessThan(tolerance);
}

describe('against torchvision', () => {
  it('builds the same input', () => {
    expectClose(image(5, 6).data, reference.input, 1e-6);
  });

  it.each([
    ['brightness_1.3', (im: FloatImage) => adjustBrightness(im, 1.3)],
    ['contrast_0.6', (im: FloatImage) => adjustContrast(im, 0.6)],
    ['saturation_1.7', (im: FloatImage) => adjustSaturation(im, 1.7)],
    ['hue_0.2', (im: FloatImage) => adjustHue(im, 0.2)],
    ['hue_-0.35', (im: FloatImage) => adjustHue(im, -0.35)],
    ['grayscale', (im: FloatImage) => toGrayscale(im)],
    ['solarize_0.5', (im: FloatImage) => solarize(im, 0.5)],
  ])('%s', (name, op) => {
    const im = image(5, 6);
    op(im);
    expectClose(im.data, reference[name], 1e-5);
  });

  it('gaussian blur (kernel 5, sigma 1.2, reflect padding)', () => {
    expectClose(gaussianBlur(image(5, 6), 1.2, 5).data, reference['blur_5_1.2'], 1e-5);
  });

  it('antialiased bilinear resize, down and up', () => {
    const big = image(10, 12);
    expectClose(big.data, reference.big, 1e-6);
    expectClose(resampleBox(big, 0, 0, 12, 10, 5, 4).data, reference.resize_big_to_4x5, 1e-5);
    expectClose(resampleBox(big, 0, 0, 12, 10, 17, 13).data, reference.resize_big_to_13x17, 1e-5);
  });
});

interface RrcCase {
  width: number;
  height: number;
  scale: [number, number];
  ratio: [number, number];
  draws: Array<['uniform', number, number, number] | ['int', number, number]>;
  box: { top: number; left: number; height: number; width: number };
}

/** An Rng that replays torch's recorded draws, checking each is asked for with the same range. */
function replay(draws: RrcCase['draws']): Rng {
  let at = 0;
  const next = () => {
    if (at >= draws.length) throw new Error(`asked for draw ${at + 1}, torch made ${draws.length}`);
    return draws[at++];
  };
  return {
    uniform(low: number, high: number) {
      const d = next();
      expect(d[0]).toBe('uniform');
      expect(low).toBeCloseTo(d[1], 5);
      expect(high).toBeCloseTo(d[2], 5);
      return d[3] as number;
    },
    int(n: number) {
      const d = next();
      expect(d[0]).toBe('int');
      expect(n).toBe(d[1]);
      return d[2] as number;
    },
    get used() {
      return at;
    },
  } as unknown as Rng;
}

describe('RandomResizedCrop boxes against torchvision get_params', () => {
  const cases = JSON.parse(readFileSync(path.join(import.meta.dirname, 'reference/rrc.json'), 'utf8')) as RrcCase[];
  it('replaying torch draws gives the same 100 boxes (60 of them fallbacks)', () => {
    expect(cases.filter((c) => c.draws.length === 20)).toHaveLength(60);
    for (const c of cases) {
      const rng = replay(c.draws);
      expect(randomResizedCropBox(c.width, c.height, c.scale, c.ratio, rng)).toEqual(c.box);
      expect((rng as unknown as { used: number }).used).toBe(c.draws.length);
    }
  });
});
