/** Photometric augmentations on FloatImage in [0, 1], in place (torchvision semantics). */
import type { Rng } from '../../util/rng.js';
import type { FloatImage } from './image.js';

const clamp01 = (x: number): number => (x < 0 ? 0 : Math.min(x, 1));

/** ITU-R 601-2 luma, the weights torchvision's rgb_to_grayscale uses. */
export const LUMA_R = 0.2989;
export const LUMA_G = 0.587;
export const LUMA_B = 0.114;

function meanGray(image: FloatImage): number {
  const { data, channels } = image;
  const pixels = image.width * image.height;
  let sum = 0;
  if (channels === 1) for (let p = 0; p < pixels; p++) sum += data[p];
  else
    for (let p = 0, s = 0; p < pixels; p++, s += 3)
      sum += LUMA_R * data[s] + LUMA_G * data[s + 1] + LUMA_B * data[s + 2];
  return sum / pixels;
}

export function adjustBrightness(image: FloatImage, factor: number): void {
  const d = image.data;
  for (let i = 0; i < d.length; i++) d[i] = clamp01(d[i] * factor);
}

/** Blends with the mean gray level of the whole image. */
export function adjustContrast(image: FloatImage, factor: number): void {
  const offset = (1 - factor) * meanGray(image);
  const d = image.data;
  for (let i = 0; i < d.length; i++) d[i] = clamp01(d[i] * factor + offset);
}

/** Blends each pixel with its own gray value (no-op on 1 channel). */
export function adjustSaturation(image: FloatImage, factor: number): void {
  if (image.channels !== 3) return;
  const d = image.data;
  for (let s = 0; s < d.length; s += 3) {
    const gray = (1 - factor) * (LUMA_R * d[s] + LUMA_G * d[s + 1] + LUMA_B * d[s + 2]);
    d[s] = clamp01(d[s] * factor + gray);
    d[s + 1] = clamp01(d[s + 1] * factor + gray);
    d[s + 2] = clamp01(d[s + 2] * factor + gray);
  }
}

function hsvChannel(n: number, hue: number, max: number, chroma: number): number {
  const k = (n + 6 * hue) % 6;
  return max - chroma * Math.max(0, Math.min(k, 4 - k, 1));
}

/** Rotates hue by `shift` turns (in [-0.5, 0.5]) through HSV (no-op on 1 channel). */
export function adjustHue(image: FloatImage, shift: number): void {
  if (image.channels !== 3) return;
  const d = image.data;
  for (let s = 0; s < d.length; s += 3) {
    const r = d[s];
    const g = d[s + 1];
    const b = d[s + 2];
    const max = Math.max(r, g, b);
    const min = Math.min(r, g, b);
    const chroma = max - min;
    if (chroma === 0) continue; // gray: hue has no effect
    let hue: number;
    if (max === r) hue = ((g - b) / chroma) % 6;
    else if (max === g) hue = (b - r) / chroma + 2;
    else hue = (r - g) / chroma + 4;
    hue = hue / 6 + shift;
    hue -= Math.floor(hue);
    // HSV -> RGB with value = max, chroma kept: channel n (R 5, G 3, B 1) is
    // max - chroma * clamp(min(k, 4 - k), 0, 1) with k = (n + 6 hue) mod 6.
    d[s] = hsvChannel(5, hue, max, chroma);
    d[s + 1] = hsvChannel(3, hue, max, chroma);
    d[s + 2] = hsvChannel(1, hue, max, chroma);
  }
}

export interface ColorJitterStrengths {
  brightness: number;
  contrast: number;
  saturation: number;
  hue: number;
}

/** The random parameters of one colour jitter: the order of the four adjustments and their factors (null = skipped). */
export interface ColorJitterDraw {
  /** A permutation of 0..3: 0 brightness, 1 contrast, 2 saturation, 3 hue. */
  order: number[];
  brightness: number | null;
  contrast: number | null;
  saturation: number | null;
  hue: number | null;
}

/**
 * torchvision ColorJitter.get_params: a random order of the four adjustments,
 * factors uniform in [max(0, 1 - s), 1 + s] (hue shift uniform in [-hue, hue]);
 * an adjustment with strength 0 draws nothing. Both executors draw through here.
 */
export function drawColorJitter(strengths: ColorJitterStrengths, rng: Rng): ColorJitterDraw {
  const order = rng.permutation(4);
  const factor = (s: number): number => rng.uniform(Math.max(0, 1 - s), 1 + s);
  return {
    order: Array.from(order),
    brightness: strengths.brightness > 0 ? factor(strengths.brightness) : null,
    contrast: strengths.contrast > 0 ? factor(strengths.contrast) : null,
    saturation: strengths.saturation > 0 ? factor(strengths.saturation) : null,
    hue: strengths.hue > 0 ? rng.uniform(-strengths.hue, strengths.hue) : null,
  };
}

/** torchvision ColorJitter on one image, in place (see drawColorJitter). */
export function colorJitter(image: FloatImage, strengths: ColorJitterStrengths, rng: Rng): void {
  const { order, brightness, contrast, saturation, hue } = drawColorJitter(strengths, rng);
  for (const which of order) {
    if (which === 0 && brightness !== null) adjustBrightness(image, brightness);
    else if (which === 1 && contrast !== null) adjustContrast(image, contrast);
    else if (which === 2 && saturation !== null) adjustSaturation(image, saturation);
    else if (which === 3 && hue !== null) adjustHue(image, hue);
  }
}

/** Replaces RGB by its gray value in all three channels (no-op on 1 channel). */
export function toGrayscale(image: FloatImage): void {
  if (image.channels !== 3) return;
  const d = image.data;
  for (let s = 0; s < d.length; s += 3) {
    const gray = LUMA_R * d[s] + LUMA_G * d[s + 1] + LUMA_B * d[s + 2];
    d[s] = d[s + 1] = d[s + 2] = gray;
  }
}

/** Pixels at or above `threshold` become 1 - x. */
export function solarize(image: FloatImage, threshold: number): void {
  const d = image.data;
  for (let i = 0; i < d.length; i++) if (d[i] >= threshold) d[i] = 1 - d[i];
}

/** SimCLR's kernel size: about 10% of the shorter side, odd, at least 3. */
export function defaultBlurKernel(width: number, height: number): number {
  const k = Math.max(3, Math.round(0.1 * Math.min(width, height)));
  return k % 2 === 1 ? k : k + 1;
}

/** Index of `i` reflected into [0, n) (torchvision "reflect": the edge pixel is not repeated). */
export function reflectIndex(i: number, n: number): number {
  if (n === 1) return 0;
  let j = i;
  while (j < 0 || j >= n) j = j < 0 ? -j : 2 * (n - 1) - j;
  return j;
}

/** The normalised 1-D Gaussian kernel of `kernelSize` taps (odd) and `sigma`. */
export function gaussianKernel(sigma: number, kernelSize: number): Float32Array {
  const radius = (kernelSize - 1) >> 1;
  const kernel = new Float32Array(kernelSize);
  let sum = 0;
  for (let i = 0; i < kernelSize; i++) {
    const x = i - radius;
    kernel[i] = Math.exp(-(x * x) / (2 * sigma * sigma));
    sum += kernel[i];
  }
  for (let i = 0; i < kernelSize; i++) kernel[i] /= sum;
  return kernel;
}

/** Separable Gaussian blur with reflect padding (torchvision GaussianBlur). */
export function gaussianBlur(image: FloatImage, sigma: number, kernelSize: number): FloatImage {
  const { width, height, channels: c } = image;
  const radius = (kernelSize - 1) >> 1;
  const kernel = gaussianKernel(sigma, kernelSize);
  const src = image.data;
  const rowLength = width * c;
  // Horizontal pass: each row copied into a reflect-padded buffer, then a plain dot product per output.
  const padded = new Float32Array((width + 2 * radius) * c);
  const temp = new Float32Array(src.length);
  for (let y = 0; y < height; y++) {
    const row = y * rowLength;
    for (let x = -radius; x < width + radius; x++) {
      const from = row + reflectIndex(x, width) * c;
      const to = (x + radius) * c;
      for (let ch = 0; ch < c; ch++) padded[to + ch] = src[from + ch];
    }
    for (let i = 0; i < rowLength; i++) {
      let acc = 0;
      for (let k = 0; k < kernelSize; k++) acc += kernel[k] * padded[i + k * c];
      temp[row + i] = acc;
    }
  }
  // Vertical pass: whole rows at a time (contiguous memory).
  const rows = new Int32Array(height + 2 * radius);
  for (let y = -radius; y < height + radius; y++) rows[y + radius] = reflectIndex(y, height) * rowLength;
  const out = new Float32Array(src.length);
  for (let y = 0; y < height; y++) {
    const target = y * rowLength;
    for (let k = 0; k < kernelSize; k++) {
      const w = kernel[k];
      const from = rows[y + k];
      for (let i = 0; i < rowLength; i++) out[target + i] += w * temp[from + i];
    }
  }
  return { data: out, width, height, channels: c };
}

/** (x - mean[c]) / std[c] in place; a single mean/std applies to every channel. */
export function normalize(image: FloatImage, mean: number[], std: number[]): void {
  const c = image.channels;
  const d = image.data;
  const m = new Float32Array(c);
  const inv = new Float32Array(c);
  for (let ch = 0; ch < c; ch++) {
    m[ch] = mean.length === 1 ? mean[0] : mean[ch];
    inv[ch] = 1 / (std.length === 1 ? std[0] : std[ch]);
  }
  for (let i = 0; i < d.length; i += c) for (let ch = 0; ch < c; ch++) d[i + ch] = (d[i + ch] - m[ch]) * inv[ch];
}
