/**
 * Ready-made pipelines for common recipes, as plain data (a recipe can copy
 * them). Means/stds: ImageNet for 3 channels, 0.5/0.5 for 1 channel unless given.
 */
import type { PipelineSpec } from '../types.js';

export const IMAGENET_MEAN = [0.485, 0.456, 0.406];
export const IMAGENET_STD = [0.229, 0.224, 0.225];

export interface PresetNormalization {
  mean?: number[];
  std?: number[];
}

function normalizeStep(channels: 1 | 3, norm: PresetNormalization): PipelineSpec[number] {
  return {
    op: 'normalize',
    mean: norm.mean ?? (channels === 3 ? IMAGENET_MEAN : [0.5]),
    std: norm.std ?? (channels === 3 ? IMAGENET_STD : [0.5]),
  };
}

/**
 * SimCLR (Chen et al. 2020, appendix A): random resized crop (scale 0.08-1),
 * horizontal flip 0.5, color jitter (0.4, 0.4, 0.4, 0.1) with p 0.8, grayscale
 * p 0.2, Gaussian blur p 0.5 (kernel 10% of the side, sigma 0.1-2) only from
 * 96 px up (the paper drops blur on CIFAR-size images), then normalize.
 */
export function SIMCLR_PIPELINE(size: number, channels: 1 | 3 = 3, norm: PresetNormalization = {}): PipelineSpec {
  const spec: PipelineSpec = [
    { op: 'randomResizedCrop', size, scale: [0.08, 1] },
    { op: 'horizontalFlip', p: 0.5 },
    { op: 'colorJitter', p: 0.8, brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.1 },
    { op: 'randomGrayscale', p: 0.2 },
  ];
  if (size >= 96) spec.push({ op: 'gaussianBlur', p: 0.5, sigma: [0.1, 2] });
  spec.push(normalizeStep(channels, norm));
  return spec;
}

/** Evaluation / finetuning preprocessing: resize the shorter side to size/0.875, center crop, normalize. */
export function EVAL_PIPELINE(size: number, channels: 1 | 3 = 3, norm: PresetNormalization = {}): PipelineSpec {
  return [{ op: 'resize', size: Math.round(size / 0.875) }, { op: 'centerCrop', size }, normalizeStep(channels, norm)];
}

/** Plain resize + center crop to exactly `size` (no crop margin), normalize: for small images like MNIST. */
export function RESIZE_PIPELINE(size: number, channels: 1 | 3 = 3, norm: PresetNormalization = {}): PipelineSpec {
  return [{ op: 'resize', size }, { op: 'centerCrop', size }, normalizeStep(channels, norm)];
}

/** Light supervised augmentation: random resized crop (scale 0.35-1) + flip, normalize. */
export function FINETUNE_PIPELINE(size: number, channels: 1 | 3 = 3, norm: PresetNormalization = {}): PipelineSpec {
  return [
    { op: 'randomResizedCrop', size, scale: [0.35, 1] },
    { op: 'horizontalFlip', p: 0.5 },
    normalizeStep(channels, norm),
  ];
}

/**
 * RotNet (Gidaris et al. 2018) input: resize + center crop; the rotation itself
 * is the task's pseudo-label, applied by the task, not here.
 */
export function ROTATION_PIPELINE(size: number, channels: 1 | 3 = 3, norm: PresetNormalization = {}): PipelineSpec {
  return [
    { op: 'randomResizedCrop', size, scale: [0.5, 1] },
    { op: 'horizontalFlip', p: 0.5 },
    normalizeStep(channels, norm),
  ];
}

/**
 * Jigsaw (Noroozi & Favaro 2016): a random crop resized to `size`, a 3x3 grid
 * with a gap of ~10% of a cell, tiles of `tileSize` px taken at a random offset
 * (jitter = the slack left in the cell), then per-tile colour jitter and
 * grayscale (against low-level shortcuts such as chromatic aberration), normalize.
 */
export function JIGSAW_PIPELINE(
  size: number,
  tileSize: number,
  channels: 1 | 3 = 3,
  norm: PresetNormalization = {},
): PipelineSpec {
  const cell = Math.floor(size / 3);
  const gap = Math.max(0, Math.round(cell * 0.1));
  const jitter = Math.max(0, cell - gap - tileSize);
  return [
    { op: 'randomResizedCrop', size, scale: [0.6, 1] },
    { op: 'jigsaw', grid: 3, tileSize, gap, jitter },
    { op: 'colorJitter', p: 0.8, brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.1 },
    { op: 'randomGrayscale', p: 0.3 },
    normalizeStep(channels, norm),
  ];
}
