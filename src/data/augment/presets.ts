/**
 * Every named view, as plain data (a recipe can copy them): the evaluation view,
 * SimCLR's view, the mild crop + flip view, FixMatch's weak and strong views.
 * Both executors (per image: pipeline.ts, per tensor batch: tensor-batch.ts)
 * read them with the same meaning.
 */
import type { AugmentStep, InputSpec, PipelineSpec } from '../types.js';

export const IMAGENET_MEAN = [0.485, 0.456, 0.406];
export const IMAGENET_STD = [0.229, 0.224, 0.225];

/** The final normalisation step of an input. */
export function normalizeStep(input: Pick<InputSpec, 'mean' | 'std'>): AugmentStep {
  return { op: 'normalize', mean: input.mean.slice(), std: input.std.slice() };
}

/**
 * The deterministic evaluation view (linear probe, kNN monitor, finetuning
 * evaluation, `embed`): the shorter side resized to `size` (aspect ratio kept),
 * the central size x size crop, normalised.
 */
export function evalView(input: InputSpec): PipelineSpec {
  return [{ op: 'resize', size: input.size }, { op: 'centerCrop', size: input.size }, normalizeStep(input)];
}

/**
 * A mild view: a random resized crop covering `cropScale` of the image (aspect
 * ratio 3/4..4/3), an optional horizontal flip, then normalisation (RotNet's input).
 */
export function mildView(input: InputSpec, cropScale: [number, number], horizontalFlip: boolean): PipelineSpec {
  const steps: PipelineSpec = [{ op: 'randomResizedCrop', size: input.size, scale: cropScale, ratio: [3 / 4, 4 / 3] }];
  if (horizontalFlip) steps.push({ op: 'horizontalFlip', p: 0.5 });
  steps.push(normalizeStep(input));
  return steps;
}

export interface SimclrAugmentationOptions {
  /** Random resized crop scale range; SimCLR uses [0.08, 1]. */
  cropScale: [number, number];
  /** Colour distortion strength s: jitter (0.8s, 0.8s, 0.8s, 0.2s); SimCLR uses 1.0 (ImageNet) and 0.5 (CIFAR-10). */
  colorJitterStrength: number;
  /** Gaussian blur: 'auto' applies it only to inputs of 96 px or more (SimCLR drops it on CIFAR-10). */
  blur: 'auto' | 'on' | 'off';
}

/** Odd kernel size of about 10% of the image side, as SimCLR's blur. */
export function blurKernelSize(size: number): number {
  const k = Math.max(3, Math.round(size * 0.1));
  return k % 2 === 1 ? k : k + 1;
}

/**
 * SimCLR's augmentation (Chen et al., 2020, appendix A): random resized crop,
 * horizontal flip, colour jitter with p 0.8, random grayscale with p 0.2,
 * Gaussian blur with p 0.5 (sigma 0.1-2.0). Size- and channel-aware: blur only
 * at 96 px and above unless forced, and for 1-channel inputs only brightness and
 * contrast jitter (saturation, hue and grayscale conversion mean nothing there).
 */
export function simclrView(input: InputSpec, options: SimclrAugmentationOptions): PipelineSpec {
  const s = options.colorJitterStrength;
  const steps: PipelineSpec = [
    { op: 'randomResizedCrop', size: input.size, scale: options.cropScale, ratio: [3 / 4, 4 / 3] },
    { op: 'horizontalFlip', p: 0.5 },
  ];
  if (s > 0) {
    if (input.channels === 3) {
      steps.push({
        op: 'colorJitter',
        p: 0.8,
        brightness: 0.8 * s,
        contrast: 0.8 * s,
        saturation: 0.8 * s,
        hue: 0.2 * s,
      });
      steps.push({ op: 'randomGrayscale', p: 0.2 });
    } else {
      steps.push({ op: 'colorJitter', p: 0.8, brightness: 0.8 * s, contrast: 0.8 * s });
    }
  }
  const blur = options.blur === 'on' || (options.blur === 'auto' && input.size >= 96);
  if (blur) steps.push({ op: 'gaussianBlur', p: 0.5, sigma: [0.1, 2.0], kernelSize: blurKernelSize(input.size) });
  steps.push(normalizeStep(input));
  return steps;
}

/** ImageNet mean/std for 3 channels, 0.5/0.5 for 1 channel. */
export function defaultInput(size: number, channels: 1 | 3 = 3): InputSpec {
  return {
    size,
    channels,
    mean: channels === 3 ? IMAGENET_MEAN : [0.5],
    std: channels === 3 ? IMAGENET_STD : [0.5],
  };
}

/** SimCLR's ImageNet setting (crop 0.08-1, strength 0.5, blur from 96 px) with default normalisation. */
export function SIMCLR_PIPELINE(size: number, channels: 1 | 3 = 3): PipelineSpec {
  return simclrView(defaultInput(size, channels), { cropScale: [0.08, 1], colorJitterStrength: 0.5, blur: 'auto' });
}

/**
 * Jigsaw (Noroozi & Favaro 2016): a random crop resized to `size`, a 3x3 grid
 * with a gap of ~10% of a cell, tiles of `tileSize` px taken at a random offset
 * (jitter = the slack left in the cell), then per-tile colour jitter and
 * grayscale (against low-level shortcuts such as chromatic aberration), normalize.
 */
export function JIGSAW_PIPELINE(size: number, tileSize: number, channels: 1 | 3 = 3): PipelineSpec {
  const cell = Math.floor(size / 3);
  const gap = Math.max(0, Math.round(cell * 0.1));
  const jitter = Math.max(0, cell - gap - tileSize);
  return [
    { op: 'randomResizedCrop', size, scale: [0.6, 1] },
    { op: 'jigsaw', grid: 3, tileSize, gap, jitter },
    { op: 'colorJitter', p: 0.8, brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.1 },
    { op: 'randomGrayscale', p: 0.3 },
    normalizeStep(defaultInput(size, channels)),
  ];
}

/** The named augmentations of labeled finetuning images (`augment.train` of a finetuning recipe). */
export const LABELED_VIEW_NAMES = ['none', 'weak', 'light', 'medium', 'strong'] as const;
export type LabeledViewName = (typeof LABELED_VIEW_NAMES)[number];

/**
 * The augmentation of labeled images by strength, for any input size and channels:
 * `none` (the evaluation view: returns []), `weak` (crop 80-100% of the area + flip, FixMatch's
 * weak view), `light` (the weak view's crop and flip + the jitter below: the few-labels default),
 * `medium` (crop 50-100% + flip + brightness and contrast jitter 0.4, and saturation
 * 0.4 on colour inputs: the textbook supervised augmentation), `strong` (crop 35-100%, the same
 * flip and jitter, and a Cutout rectangle of 2-25% of the area on half the images).
 */
export function labeledView(name: LabeledViewName, input: InputSpec): PipelineSpec {
  const { size, mean, std } = input;
  if (name === 'none') return [];
  if (name === 'weak') return weakView(size, mean, std);
  const jitter: AugmentStep =
    input.channels === 3
      ? { op: 'colorJitter', p: 1, brightness: 0.4, contrast: 0.4, saturation: 0.4 }
      : { op: 'colorJitter', p: 1, brightness: 0.4, contrast: 0.4 };
  const crop: AugmentStep =
    name === 'light'
      ? { op: 'randomResizedCrop', size, scale: [0.8, 1], ratio: [0.9, 1.1] }
      : { op: 'randomResizedCrop', size, scale: [name === 'strong' ? 0.35 : 0.5, 1], ratio: [3 / 4, 4 / 3] };
  const steps: PipelineSpec = [crop, { op: 'horizontalFlip', p: 0.5 }, jitter];
  if (name === 'strong')
    steps.push({ op: 'randomErasing', p: 0.5, scale: [0.02, 0.25], ratio: [0.3, 3.3], value: 0.5 });
  steps.push(normalizeStep(input));
  return steps;
}

/** FixMatch's weak view (Sohn et al., 2020: "flip-and-shift"): a slight crop and a flip. */
export function weakView(size: number, mean: number[], std: number[]): PipelineSpec {
  return [
    { op: 'randomResizedCrop', size, scale: [0.8, 1], ratio: [0.9, 1.1] },
    { op: 'horizontalFlip', p: 0.5 },
    { op: 'normalize', mean, std },
  ];
}

/**
 * FixMatch's strong view: a wider crop, flip, color jitter, grayscale, blur, solarize, and a
 * Cutout-style erased rectangle on every image (FixMatch's strong augmentation always ends
 * with Cutout, up to half the side).
 */
export function strongView(size: number, mean: number[], std: number[]): PipelineSpec {
  return [
    { op: 'randomResizedCrop', size, scale: [0.5, 1] },
    { op: 'horizontalFlip', p: 0.5 },
    { op: 'colorJitter', p: 0.8, brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.1 },
    { op: 'randomGrayscale', p: 0.2 },
    { op: 'gaussianBlur', p: 0.5, sigma: [0.1, 1.5] },
    { op: 'solarize', p: 0.2, threshold: 0.5 },
    { op: 'randomErasing', p: 1, scale: [0.02, 0.25], ratio: [0.3, 3.3], value: 0.5 },
    { op: 'normalize', mean, std },
  ];
}
