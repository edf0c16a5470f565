/**
 * Pipelines are data (`PipelineSpec`, an array of `AugmentStep`). This module
 * validates them with errors that name the step and key, computes their output
 * shape, and runs them on one image with one Rng stream.
 */
import { assertInteger, assertNumber, describeValue, invalidOption, UsageError } from '../../util/errors.js';
import type { Rng } from '../../util/rng.js';
import type { AugmentStep, PipelineSpec, ViewData } from '../types.js';
import { colorJitter, defaultBlurKernel, gaussianBlur, normalize, solarize, toGrayscale } from './color.js';
import {
  affineSampling,
  centerCrop,
  drawAffine,
  eraseRect,
  flipHorizontal,
  flipVertical,
  jigsawTiles,
  randomCropOffset,
  randomResizedCropBox,
  resizeShorter,
  rotate90,
  sampleBox,
  warpAffine,
} from './geometry.js';
import { type AnyImage, cropWithPadding, type FloatImage, resampleBox, toFloatImage } from './image.js';

/** Every op, with the keys it accepts (besides `op`). */
export const STEP_KEYS: Record<AugmentStep['op'], readonly string[]> = {
  resize: ['size'],
  centerCrop: ['size'],
  randomResizedCrop: ['size', 'scale', 'ratio'],
  randomCrop: ['size', 'padding', 'fill'],
  horizontalFlip: ['p'],
  verticalFlip: ['p'],
  colorJitter: ['p', 'brightness', 'contrast', 'saturation', 'hue'],
  randomGrayscale: ['p'],
  gaussianBlur: ['p', 'sigma', 'kernelSize'],
  solarize: ['p', 'threshold'],
  randomErasing: ['p', 'scale', 'ratio', 'value'],
  randomAffine: ['p', 'degrees', 'translate', 'scale', 'shear', 'fill'],
  rotate90: ['k'],
  jigsaw: ['grid', 'tileSize', 'gap', 'jitter'],
  normalize: ['mean', 'std'],
};

/** Default values of optional keys (documented in docs/data.md). */
export const STEP_DEFAULTS = {
  randomResizedCrop: { scale: [0.08, 1] as [number, number], ratio: [3 / 4, 4 / 3] as [number, number] },
  randomCrop: { padding: 0, fill: 0 },
  flipP: 0.5,
  colorJitter: { p: 1, brightness: 0, contrast: 0, saturation: 0, hue: 0 },
  randomGrayscale: { p: 0.1 },
  gaussianBlur: { p: 0.5, sigma: [0.1, 2] as [number, number] },
  solarize: { p: 0.5, threshold: 0.5 },
  randomErasing: { p: 0.5, scale: [0.02, 0.33] as [number, number], ratio: [0.3, 3.3] as [number, number], value: 0.5 },
  randomAffine: { p: 1, fill: 0 },
  jigsaw: { gap: 0, jitter: 0 },
};

function assertRange(key: string, value: unknown, min: number, max: number): [number, number] {
  if (
    !Array.isArray(value) ||
    value.length !== 2 ||
    !value.every((v) => typeof v === 'number' && Number.isFinite(v) && v >= min && v <= max) ||
    value[0] > value[1]
  ) {
    throw invalidOption(key, `[low, high] with ${min} <= low <= high <= ${max}`, value);
  }
  return value as [number, number];
}

function optional<T>(step: Record<string, unknown>, key: string, check: (v: unknown) => T): void {
  if (step[key] !== undefined) check(step[key]);
}

/** Checks one step; `where` names it in errors, e.g. `views[1][3]`. Returns the step typed. */
export function validateStep(step: unknown, where: string, channels: 1 | 3): AugmentStep {
  if (typeof step !== 'object' || step === null || Array.isArray(step)) {
    throw invalidOption(where, 'an augmentation step object like { op: "horizontalFlip" }', step);
  }
  const s = step as Record<string, unknown>;
  const ops = Object.keys(STEP_KEYS) as AugmentStep['op'][];
  if (typeof s.op !== 'string' || !(ops as string[]).includes(s.op)) {
    throw invalidOption(`${where}.op`, `one of ${ops.map((o) => `"${o}"`).join(', ')}`, s.op);
  }
  const op = s.op as AugmentStep['op'];
  const allowed = STEP_KEYS[op];
  for (const key of Object.keys(s)) {
    if (key !== 'op' && !allowed.includes(key)) {
      throw new UsageError(
        `Unknown key ${where}.${key} for op "${op}" (allowed: ${allowed.join(', ') || 'none'}) with value ${describeValue(s[key])}`,
      );
    }
  }
  const k = (key: string): string => `${where}.${key}`;
  const p = (): void => optional(s, 'p', (v) => assertNumber(k('p'), v, 0, 1));
  switch (op) {
    case 'resize':
    case 'centerCrop':
      assertInteger(k('size'), s.size, 1, 8192);
      break;
    case 'randomResizedCrop':
      assertInteger(k('size'), s.size, 1, 8192);
      optional(s, 'scale', (v) => assertRange(k('scale'), v, 1e-6, 1));
      optional(s, 'ratio', (v) => assertRange(k('ratio'), v, 1e-3, 1e3));
      break;
    case 'randomCrop':
      assertInteger(k('size'), s.size, 1, 8192);
      optional(s, 'padding', (v) => assertInteger(k('padding'), v, 0, 4096));
      optional(s, 'fill', (v) => assertNumber(k('fill'), v, 0, 1));
      break;
    case 'horizontalFlip':
    case 'verticalFlip':
    case 'randomGrayscale':
      p();
      break;
    case 'colorJitter':
      p();
      for (const key of ['brightness', 'contrast', 'saturation'])
        optional(s, key, (v) => assertNumber(k(key), v, 0, 10));
      optional(s, 'hue', (v) => assertNumber(k('hue'), v, 0, 0.5));
      break;
    case 'gaussianBlur':
      p();
      optional(s, 'sigma', (v) => assertRange(k('sigma'), v, 1e-3, 100));
      optional(s, 'kernelSize', (v) => {
        const size = assertInteger(k('kernelSize'), v, 1, 255);
        if (size % 2 === 0) throw invalidOption(k('kernelSize'), 'an odd integer', v);
      });
      break;
    case 'solarize':
      p();
      optional(s, 'threshold', (v) => assertNumber(k('threshold'), v, 0, 1));
      break;
    case 'randomErasing':
      p();
      optional(s, 'scale', (v) => assertRange(k('scale'), v, 1e-6, 1));
      optional(s, 'ratio', (v) => assertRange(k('ratio'), v, 1e-3, 1e3));
      optional(s, 'value', (v) => assertNumber(k('value'), v, 0, 1));
      break;
    case 'randomAffine':
      p();
      assertNumber(k('degrees'), s.degrees, 0, 180);
      optional(s, 'translate', (v) => {
        if (!Array.isArray(v) || v.length !== 2 || !v.every((t) => typeof t === 'number' && t >= 0 && t <= 1)) {
          throw invalidOption(k('translate'), '[x, y] fractions of the width and height, each in [0, 1]', v);
        }
      });
      optional(s, 'scale', (v) => assertRange(k('scale'), v, 1e-3, 100));
      optional(s, 'shear', (v) => assertNumber(k('shear'), v, 0, 89));
      optional(s, 'fill', (v) => assertNumber(k('fill'), v, 0, 1));
      break;
    case 'rotate90':
      optional(s, 'k', (v) => assertInteger(k('k'), v, 0, 3));
      break;
    case 'jigsaw':
      assertInteger(k('grid'), s.grid, 1, 16);
      assertInteger(k('tileSize'), s.tileSize, 1, 4096);
      optional(s, 'gap', (v) => assertInteger(k('gap'), v, 0, 4096));
      optional(s, 'jitter', (v) => assertInteger(k('jitter'), v, 0, 4096));
      break;
    case 'normalize': {
      for (const key of ['mean', 'std']) {
        const v = s[key];
        if (!Array.isArray(v) || !(v.length === 1 || v.length === channels) || !v.every(Number.isFinite)) {
          throw invalidOption(k(key), `an array of 1 or ${channels} numbers (one per channel)`, v);
        }
      }
      if ((s.std as number[]).some((x) => x <= 0)) throw invalidOption(k('std'), 'positive numbers', s.std);
      break;
    }
  }
  return s as AugmentStep;
}

/**
 * Validates a whole pipeline for `channels`-channel images and returns the
 * per-image output shape: [H, W, C], or [T, h, w, C] after jigsaw. Throws
 * UsageError naming the step when the output size is not fixed.
 */
export function validatePipeline(spec: unknown, channels: 1 | 3, where = 'pipeline'): number[] {
  if (!Array.isArray(spec) || spec.length === 0) {
    throw invalidOption(where, 'a non-empty array of augmentation steps', spec);
  }
  // Track whether the spatial size is fixed after each step.
  let side: number | null = null;
  let tiles = 0;
  spec.forEach((raw, i) => {
    const step = validateStep(raw, `${where}[${i}]`, channels);
    if (step.op === 'normalize' && i !== spec.length - 1) {
      throw new UsageError(`${where}[${i}]: normalize must be the last step (it is step ${i} of ${spec.length})`);
    }
    if (step.op === 'resize') side = null;
    if (step.op === 'centerCrop' || step.op === 'randomResizedCrop' || step.op === 'randomCrop') side = step.size;
    if (step.op === 'jigsaw') {
      if (tiles) throw new UsageError(`${where}[${i}]: only one jigsaw step per pipeline`);
      tiles = step.grid * step.grid;
      side = step.tileSize;
    }
  });
  if (side === null) {
    throw new UsageError(
      `${where}: output size is not fixed; end the geometric steps with centerCrop, randomResizedCrop, randomCrop or jigsaw so every image in a batch has the same shape`,
    );
  }
  return tiles ? [tiles, side, side, channels] : [side, side, channels];
}

function applyStep(image: AnyImage, step: AugmentStep, rng: Rng): FloatImage {
  // In-place ops need a private float copy of the decoded image.
  const owned = (): FloatImage => toFloatImage(image);
  switch (step.op) {
    case 'resize':
      return resizeShorter(image, step.size);
    case 'centerCrop':
      return centerCrop(image, step.size);
    case 'randomResizedCrop': {
      const d = STEP_DEFAULTS.randomResizedCrop;
      const box = randomResizedCropBox(image.width, image.height, step.scale ?? d.scale, step.ratio ?? d.ratio, rng);
      return resampleBox(image, box.left, box.top, box.width, box.height, step.size, step.size);
    }
    case 'randomCrop': {
      const d = STEP_DEFAULTS.randomCrop;
      const { top, left } = randomCropOffset(image.width, image.height, step.size, step.padding ?? d.padding, rng);
      return cropWithPadding(image, left, top, step.size, step.size, step.fill ?? d.fill);
    }
    case 'horizontalFlip':
      return rng.chance(step.p ?? STEP_DEFAULTS.flipP) ? flipHorizontal(owned()) : owned();
    case 'verticalFlip':
      return rng.chance(step.p ?? STEP_DEFAULTS.flipP) ? flipVertical(owned()) : owned();
    case 'colorJitter': {
      const out = owned();
      if (!rng.chance(step.p ?? STEP_DEFAULTS.colorJitter.p)) return out;
      colorJitter(out, { ...STEP_DEFAULTS.colorJitter, ...step }, rng);
      return out;
    }
    case 'randomGrayscale': {
      const out = owned();
      if (rng.chance(step.p ?? STEP_DEFAULTS.randomGrayscale.p)) toGrayscale(out);
      return out;
    }
    case 'gaussianBlur': {
      if (!rng.chance(step.p ?? STEP_DEFAULTS.gaussianBlur.p)) return owned();
      const [low, high] = step.sigma ?? STEP_DEFAULTS.gaussianBlur.sigma;
      const sigma = rng.uniform(low, high);
      return gaussianBlur(owned(), sigma, step.kernelSize ?? defaultBlurKernel(image.width, image.height));
    }
    case 'solarize': {
      const out = owned();
      if (rng.chance(step.p ?? STEP_DEFAULTS.solarize.p))
        solarize(out, step.threshold ?? STEP_DEFAULTS.solarize.threshold);
      return out;
    }
    case 'randomErasing': {
      const out = owned();
      const d = STEP_DEFAULTS.randomErasing;
      if (!rng.chance(step.p ?? d.p)) return out;
      // None found in 10 draws: the image is left as it is.
      const box = sampleBox(out.width, out.height, step.scale ?? d.scale, step.ratio ?? d.ratio, rng);
      if (box) eraseRect(out, box, step.value ?? d.value);
      return out;
    }
    case 'randomAffine': {
      const out = owned();
      const d = STEP_DEFAULTS.randomAffine;
      if (!rng.chance(step.p ?? d.p)) return out;
      const draw = drawAffine(out.width, out.height, step, rng);
      return warpAffine(out, affineSampling(out.width, out.height, draw), step.fill ?? d.fill);
    }
    case 'rotate90':
      return rotate90(owned(), step.k ?? rng.int(4));
    case 'normalize': {
      const out = owned();
      normalize(out, step.mean, step.std);
      return out;
    }
    case 'jigsaw':
      throw new Error('jigsaw is handled by runPipeline');
  }
}

/**
 * Runs a validated pipeline on one image (decoded 8-bit, or floats in [0, 1]). All randomness comes from
 * `rng` (one stream per image and view), so the same stream gives the same pixels.
 * Returns float32 data of the shape `validatePipeline` reported.
 */
export function runPipeline(image: AnyImage, spec: PipelineSpec, rng: Rng): ViewData {
  // In-place steps must not write into the caller's float image.
  let tiles: AnyImage[] = [image.data instanceof Float32Array ? { ...image, data: image.data.slice() } : image];
  let tiled = false;
  for (const step of spec) {
    if (step.op === 'jigsaw') {
      tiles = jigsawTiles(tiles[0], { gap: 0, jitter: 0, ...step }, rng);
      tiled = true;
      continue;
    }
    tiles = tiles.map((tile) => applyStep(tile, step, rng));
  }
  const floats = tiles.map(toFloatImage);
  const first = floats[0];
  const tileLength = first.data.length;
  const data = new Float32Array(tileLength * floats.length);
  floats.forEach((tile, t) => {
    data.set(tile.data, t * tileLength);
  });
  const shape = [first.height, first.width, first.channels];
  return { data, shape: tiled ? [floats.length, ...shape] : shape };
}
