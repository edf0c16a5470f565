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
import { type FloatImage, resampleBox } from '../../src/data/augment/image.js';

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
