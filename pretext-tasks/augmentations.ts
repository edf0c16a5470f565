/**
 * Augmentation pipelines (as data) shared by the pretext tasks.
 */
import type { AugmentStep, PipelineSpec } from '../src/data/types.js';
import type { InputSpec } from './types.js';

/** The final normalisation step for an input spec. */
export function normalizeStep(input: InputSpec): AugmentStep {
  return { op: 'normalize', mean: input.mean.slice(), std: input.std.slice() };
}

/**
 * A mild view: a random resized crop covering `cropScale` of the image (aspect
 * ratio 3/4..4/3), an optional horizontal flip, then normalisation.
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
