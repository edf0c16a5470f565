/** Geometric augmentations on host arrays (torchvision semantics where one exists). */
import type { Rng } from '../../util/rng.js';
import { type AnyImage, cropWithPadding, type FloatImage, resampleBox, toFloatImage } from './image.js';

/** torchvision Resize(int): the shorter side becomes `size`, the other keeps the aspect ratio. */
export function resizeShorter(image: AnyImage, size: number): FloatImage {
  const { width, height } = image;
  if (Math.min(width, height) === size) return toFloatImage(image);
  const outWidth = width <= height ? size : Math.max(1, Math.floor((size * width) / height));
  const outHeight = width <= height ? Math.max(1, Math.floor((size * height) / width)) : size;
  return resampleBox(image, 0, 0, width, height, outWidth, outHeight);
}

/** torchvision CenterCrop: a size x size box from the middle, zero-padded when the image is smaller. */
export function centerCrop(image: AnyImage, size: number): FloatImage {
  const top = Math.round((image.height - size) / 2);
  const left = Math.round((image.width - size) / 2);
  return cropWithPadding(image, left, top, size, size);
}

/** [low, high] of a uniform (area fraction) or log-uniform (aspect ratio) draw. */
type Range = [number, number];

export interface CropBox {
  top: number;
  left: number;
  height: number;
  width: number;
}

/**
 * Up to 10 tries of an area fraction in `scale` and a log-uniform aspect ratio
 * in `ratio`, placed uniformly inside a width x height image; null when none fits.
 * The draws of torchvision's RandomResizedCrop.get_params and RandomErasing.get_params.
 */
export function sampleBox(width: number, height: number, scale: Range, ratio: Range, rng: Rng): CropBox | null {
  const area = width * height;
  const logLow = Math.log(ratio[0]);
  const logHigh = Math.log(ratio[1]);
  for (let attempt = 0; attempt < 10; attempt++) {
    const targetArea = area * rng.uniform(scale[0], scale[1]);
    const aspect = Math.exp(rng.uniform(logLow, logHigh));
    const w = Math.round(Math.sqrt(targetArea * aspect));
    const h = Math.round(Math.sqrt(targetArea / aspect));
    if (w > 0 && h > 0 && w <= width && h <= height) {
      return { top: rng.int(height - h + 1), left: rng.int(width - w + 1), height: h, width: w };
    }
  }
  return null;
}

/**
 * torchvision RandomResizedCrop.get_params: `sampleBox`, otherwise the central
 * crop with the ratio clamped into range (or the whole image).
 */
export function randomResizedCropBox(width: number, height: number, scale: Range, ratio: Range, rng: Rng): CropBox {
  const sampled = sampleBox(width, height, scale, ratio, rng);
  if (sampled) return sampled;
  const inRatio = width / height;
  let w = width;
  let h = height;
  if (inRatio < ratio[0]) {
    h = Math.round(w / ratio[0]);
  } else if (inRatio > ratio[1]) {
    w = Math.round(h * ratio[1]);
  }
  return { top: Math.floor((height - h) / 2), left: Math.floor((width - w) / 2), height: h, width: w };
}

/**
 * The draw of torchvision RandomCrop(size, padding): the top-left corner of a
 * size x size crop of the image padded by `padding` px on every side, top drawn
 * first, then left, each uniform over every position that fits (no draw when the
 * padded image is exactly size x size, as torchvision). Returned in the
 * coordinates of the unpadded image, so the padded band is where top or left < 0
 * or the crop passes the far edge. Throws RangeError when the padded image is
 * smaller than the crop.
 */
export function randomCropOffset(
  width: number,
  height: number,
  size: number,
  padding: number,
  rng: Rng,
): { top: number; left: number } {
  const paddedWidth = width + 2 * padding;
  const paddedHeight = height + 2 * padding;
  if (paddedWidth < size || paddedHeight < size) {
    throw new RangeError(
      `randomCrop: a ${width}x${height} image padded by ${padding} px is ${paddedWidth}x${paddedHeight}, smaller than the ${size}x${size} crop; resize the image first or raise padding`,
    );
  }
  if (paddedWidth === size && paddedHeight === size) return { top: -padding, left: -padding };
  const top = rng.int(paddedHeight - size + 1);
  const left = rng.int(paddedWidth - size + 1);
  return { top: top - padding, left: left - padding };
}

/** Mirrors left-right in place. */
export function flipHorizontal(image: FloatImage): FloatImage {
  const { width, height, channels: c, data } = image;
  for (let y = 0; y < height; y++) {
    const row = y * width * c;
    for (let x = 0; x < width >> 1; x++) {
      const a = row + x * c;
      const b = row + (width - 1 - x) * c;
      for (let ch = 0; ch < c; ch++) {
        const t = data[a + ch];
        data[a + ch] = data[b + ch];
        data[b + ch] = t;
      }
    }
  }
  return image;
}

/** Mirrors top-bottom in place. */
export function flipVertical(image: FloatImage): FloatImage {
  const { width, height, channels: c, data } = image;
  const rowLength = width * c;
  const temp = new Float32Array(rowLength);
  for (let y = 0; y < height >> 1; y++) {
    const a = y * rowLength;
    const b = (height - 1 - y) * rowLength;
    temp.set(data.subarray(a, a + rowLength));
    data.copyWithin(a, b, b + rowLength);
    data.set(temp, b);
  }
  return image;
}

/** Rotates counter-clockwise by k * 90 degrees (like numpy.rot90 / torch.rot90 on H, W). */
export function rotate90(image: FloatImage, k: number): FloatImage {
  const turns = ((k % 4) + 4) % 4;
  if (turns === 0) return image;
  const { width, height, channels: c, data } = image;
  const outWidth = turns === 2 ? width : height;
  const outHeight = turns === 2 ? height : width;
  const out = new Float32Array(data.length);
  for (let y = 0; y < outHeight; y++) {
    for (let x = 0; x < outWidth; x++) {
      let sy: number;
      let sx: number;
      if (turns === 1) {
        sy = x;
        sx = width - 1 - y;
      } else if (turns === 2) {
        sy = height - 1 - y;
        sx = width - 1 - x;
      } else {
        sy = height - 1 - x;
        sx = y;
      }
      const s = (sy * width + sx) * c;
      const d = (y * outWidth + x) * c;
      for (let ch = 0; ch < c; ch++) out[d + ch] = data[s + ch];
    }
  }
  return { data: out, width: outWidth, height: outHeight, channels: c };
}

export interface JigsawOptions {
  grid: number;
  tileSize: number;
  gap: number;
  jitter: number;
}

/**
 * Cuts grid x grid tiles in row-major order. Each cell (image / grid) is shrunk
 * by `gap` px (centered), a box of (inner - jitter) px is taken at a random
 * offset in [0, jitter] on each axis, and resized to tileSize.
 */
export function jigsawTiles(image: AnyImage, options: JigsawOptions, rng: Rng): FloatImage[] {
  const { grid, tileSize, gap, jitter } = options;
  const cellWidth = Math.floor(image.width / grid);
  const cellHeight = Math.floor(image.height / grid);
  const boxWidth = cellWidth - gap - jitter;
  const boxHeight = cellHeight - gap - jitter;
  if (boxWidth < 1 || boxHeight < 1) {
    throw new RangeError(
      `jigsaw: a ${image.width}x${image.height} image has ${cellWidth}x${cellHeight} px cells for grid ${grid}, too small for gap ${gap} + jitter ${jitter}; resize the image first or lower gap/jitter`,
    );
  }
  const tiles: FloatImage[] = [];
  for (let row = 0; row < grid; row++) {
    for (let col = 0; col < grid; col++) {
      const offsetY = rng.int(jitter + 1);
      const offsetX = rng.int(jitter + 1);
      const top = row * cellHeight + Math.floor(gap / 2) + offsetY;
      const left = col * cellWidth + Math.floor(gap / 2) + offsetX;
      tiles.push(resampleBox(image, left, top, boxWidth, boxHeight, tileSize, tileSize));
    }
  }
  return tiles;
}

/** Fills `box` in every channel with `value`, in place (random erasing). */
export function eraseRect(image: FloatImage, box: CropBox, value: number): void {
  const { width, channels, data } = image;
  for (let y = box.top; y < box.top + box.height; y++) {
    data.fill(value, (y * width + box.left) * channels, (y * width + box.left + box.width) * channels);
  }
}

/** randomAffine's keys (torchvision RandomAffine: degrees, translate, scale, shear; all but degrees optional). */
export interface AffineSpec {
  degrees: number;
  translate?: [number, number];
  scale?: [number, number];
  shear?: number;
}

/** One image's affine parameters: rotation and x-shear in degrees, translation in pixels, zoom factor. */
export interface AffineDraw {
  angle: number;
  tx: number;
  ty: number;
  scale: number;
  shear: number;
}

/**
 * Draws randomAffine's parameters in torchvision's order: angle uniform in [-degrees, degrees];
 * translation uniform in +-translate[0] x width and +-translate[1] x height pixels (not rounded);
 * scale uniform in `scale`; x-shear uniform in [-shear, shear] degrees. Absent keys draw nothing.
 */
export function drawAffine(width: number, height: number, spec: AffineSpec, rng: Rng): AffineDraw {
  const angle = spec.degrees > 0 ? rng.uniform(-spec.degrees, spec.degrees) : 0;
  let tx = 0;
  let ty = 0;
  if (spec.translate) {
    tx = rng.uniform(-spec.translate[0] * width, spec.translate[0] * width);
    ty = rng.uniform(-spec.translate[1] * height, spec.translate[1] * height);
  }
  const scale = spec.scale ? rng.uniform(spec.scale[0], spec.scale[1]) : 1;
  const shear = spec.shear ? rng.uniform(-spec.shear, spec.shear) : 0;
  return { angle, tx, ty, scale, shear };
}

/**
 * Bilinear sampling of the affine warp `d` about the image centre (output = T(c + t) R Sh S T(-c) input,
 * pixel centres at +0.5): for output pixel o, its four source pixels `index[4o + k]` (row-major
 * y * width + x; -1 outside the image, where the fill value is read) and their weights. Both
 * augmentation executors sample through this, so they compute the same warp.
 */
export function affineSampling(
  width: number,
  height: number,
  d: AffineDraw,
): { index: Int32Array; weight: Float32Array } {
  const n = width * height;
  const index = new Int32Array(4 * n);
  const weight = new Float32Array(4 * n);
  const rad = (d.angle * Math.PI) / 180;
  const cos = Math.cos(rad);
  const sin = Math.sin(rad);
  const tan = Math.tan((d.shear * Math.PI) / 180);
  const at = (x: number, y: number) => (x >= 0 && x < width && y >= 0 && y < height ? y * width + x : -1);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      // Output point relative to the centre, less the translation; then R^-1, Sh^-1 and 1/scale.
      const px = x + 0.5 - width / 2 - d.tx;
      const py = y + 0.5 - height / 2 - d.ty;
      const rx = cos * px + sin * py;
      const ry = -sin * px + cos * py;
      const sx = (rx - tan * ry) / d.scale;
      const sy = ry / d.scale;
      // Back to pixel-index coordinates of the source.
      const u = sx + width / 2 - 0.5;
      const v = sy + height / 2 - 0.5;
      const x0 = Math.floor(u);
      const y0 = Math.floor(v);
      const fx = u - x0;
      const fy = v - y0;
      const o = 4 * (y * width + x);
      index[o] = at(x0, y0);
      index[o + 1] = at(x0 + 1, y0);
      index[o + 2] = at(x0, y0 + 1);
      index[o + 3] = at(x0 + 1, y0 + 1);
      weight[o] = (1 - fx) * (1 - fy);
      weight[o + 1] = fx * (1 - fy);
      weight[o + 2] = (1 - fx) * fy;
      weight[o + 3] = fx * fy;
    }
  }
  return { index, weight };
}

/** A new image: `image` warped by `sampling` (affineSampling), `fill` outside the source. */
export function warpAffine(
  image: FloatImage,
  sampling: { index: Int32Array; weight: Float32Array },
  fill: number,
): FloatImage {
  const { width, height, channels, data } = image;
  const out = new Float32Array(width * height * channels);
  for (let o = 0; o < width * height; o++) {
    for (let c = 0; c < channels; c++) {
      let sum = 0;
      for (let k = 0; k < 4; k++) {
        const i = sampling.index[4 * o + k];
        sum += sampling.weight[4 * o + k] * (i < 0 ? fill : data[i * channels + c]);
      }
      out[o * channels + c] = sum;
    }
  }
  return { data: out, width, height, channels };
}
