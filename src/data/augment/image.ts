/**
 * Host image arrays for augmentation: HWC float32 in [0, 1], plus the one
 * resampler every geometric op uses (separable triangle filter that widens when
 * shrinking, so downscaling is antialiased like PIL / torchvision `antialias=True`).
 */
import type { RawImage } from '../types.js';

/** HWC float image with values in [0, 1]. */
export interface FloatImage {
  data: Float32Array;
  width: number;
  height: number;
  channels: number;
}

/** Anything HWC: a decoded RawImage (0-255) or a FloatImage (0-1). */
export type AnyImage = RawImage | FloatImage;

/** Value scale that maps `image.data` to [0, 1]. */
export function unitScale(image: AnyImage): number {
  return image.data instanceof Uint8Array ? 1 / 255 : 1;
}

export function toFloatImage(image: AnyImage): FloatImage {
  if (image.data instanceof Float32Array) return image as FloatImage;
  const data = new Float32Array(image.data.length);
  const src = image.data;
  for (let i = 0; i < src.length; i++) data[i] = src[i] * (1 / 255);
  return { data, width: image.width, height: image.height, channels: image.channels };
}

interface Taps {
  /** First input index per output index. */
  starts: Int32Array;
  counts: Int32Array;
  /** Weights, `maxTaps` slots per output index. */
  weights: Float32Array;
  maxTaps: number;
}

/** Filter taps mapping input span [start, start + inLength) to `outLength` samples. */
function filterTaps(start: number, inLength: number, outLength: number): Taps {
  const scale = inLength / outLength;
  const radius = Math.max(scale, 1);
  const maxTaps = Math.ceil(radius) * 2 + 2;
  const starts = new Int32Array(outLength);
  const counts = new Int32Array(outLength);
  const weights = new Float32Array(outLength * maxTaps);
  for (let o = 0; o < outLength; o++) {
    const center = (o + 0.5) * scale;
    const low = Math.max(0, Math.floor(center - radius));
    const high = Math.min(inLength, Math.ceil(center + radius));
    let sum = 0;
    let n = 0;
    for (let i = low; i < high && n < maxTaps; i++, n++) {
      const w = Math.max(0, 1 - Math.abs((i + 0.5 - center) / radius));
      weights[o * maxTaps + n] = w;
      sum += w;
    }
    if (sum === 0) {
      // Degenerate span (upscaling a single pixel): take the nearest input.
      weights[o * maxTaps] = 1;
      n = 1;
      sum = 1;
      starts[o] = start + Math.min(inLength - 1, Math.max(0, Math.floor(center)));
    } else {
      starts[o] = start + low;
    }
    for (let k = 0; k < n; k++) weights[o * maxTaps + k] /= sum;
    counts[o] = n;
  }
  return { starts, counts, weights, maxTaps };
}

/**
 * The resampling of `resampleBox` along one axis as a dense [outLength, fullLength]
 * matrix (row o holds the weights of output o over the input positions): the
 * tensor executor applies it with a matrix product, so both executors resample
 * with the same filter.
 */
export function resampleMatrix(start: number, inLength: number, outLength: number, fullLength: number): Float32Array {
  const taps = filterTaps(start, inLength, outLength);
  const out = new Float32Array(outLength * fullLength);
  for (let o = 0; o < outLength; o++) {
    for (let k = 0; k < taps.counts[o]; k++)
      out[o * fullLength + taps.starts[o] + k] += taps.weights[o * taps.maxTaps + k];
  }
  return out;
}

/**
 * Resamples the box (left, top, boxWidth, boxHeight) of `image` to
 * outWidth x outHeight. The box must lie inside the image. Output in [0, 1].
 */
export function resampleBox(
  image: AnyImage,
  left: number,
  top: number,
  boxWidth: number,
  boxHeight: number,
  outWidth: number,
  outHeight: number,
): FloatImage {
  const c = image.channels;
  const src = image.data;
  const srcStride = image.width * c;
  const scale = unitScale(image);
  const horizontal = filterTaps(left, boxWidth, outWidth);
  const vertical = filterTaps(top, boxHeight, outHeight);
  // Horizontal pass over the box rows only: [boxHeight, outWidth, C].
  const temp = new Float32Array(boxHeight * outWidth * c);
  for (let y = 0; y < boxHeight; y++) {
    const rowBase = (top + y) * srcStride;
    const tempRow = y * outWidth * c;
    for (let x = 0; x < outWidth; x++) {
      const first = horizontal.starts[x];
      const n = horizontal.counts[x];
      const wBase = x * horizontal.maxTaps;
      for (let ch = 0; ch < c; ch++) {
        let acc = 0;
        for (let k = 0; k < n; k++) acc += horizontal.weights[wBase + k] * src[rowBase + (first + k) * c + ch];
        temp[tempRow + x * c + ch] = acc * scale;
      }
    }
  }
  // Vertical pass: [outHeight, outWidth, C].
  const out = new Float32Array(outHeight * outWidth * c);
  const rowLength = outWidth * c;
  for (let y = 0; y < outHeight; y++) {
    const first = vertical.starts[y] - top;
    const n = vertical.counts[y];
    const wBase = y * vertical.maxTaps;
    const outRow = y * rowLength;
    for (let k = 0; k < n; k++) {
      const w = vertical.weights[wBase + k];
      const tempRow = (first + k) * rowLength;
      for (let i = 0; i < rowLength; i++) out[outRow + i] += w * temp[tempRow + i];
    }
  }
  return { data: out, width: outWidth, height: outHeight, channels: c };
}

/**
 * Crops (left, top, width, height), filling outside the image with `fill` (0-1 scale,
 * every channel; 0 as torchvision pads center crops).
 */
export function cropWithPadding(
  image: AnyImage,
  left: number,
  top: number,
  width: number,
  height: number,
  fill = 0,
): FloatImage {
  const c = image.channels;
  const scale = unitScale(image);
  const out = new Float32Array(width * height * c);
  if (fill !== 0) out.fill(fill);
  for (let y = 0; y < height; y++) {
    const sy = top + y;
    if (sy < 0 || sy >= image.height) continue;
    for (let x = 0; x < width; x++) {
      const sx = left + x;
      if (sx < 0 || sx >= image.width) continue;
      const s = (sy * image.width + sx) * c;
      const d = (y * width + x) * c;
      for (let ch = 0; ch < c; ch++) out[d + ch] = image.data[s + ch] * scale;
    }
  }
  return { data: out, width, height, channels: c };
}
