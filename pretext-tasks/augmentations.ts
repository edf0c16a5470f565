/**
 * The views the pretext tasks use; they live with every other named view in
 * src/data/augment/presets.ts and are re-exported here for task authors. The
 * augmentation options every two-view method shares are documented here.
 */
import type { SimclrAugmentationOptions } from '../src/data/augment/presets.js';

export {
  blurKernelSize,
  mildView,
  normalizeStep,
  type SimclrAugmentationOptions,
  simclrView,
} from '../src/data/augment/presets.js';

/** Defaults of the two-view methods' augmentation options (SimCLR's, with crops of 0.2-1 for small images). */
export const TWO_VIEW_AUGMENTATION_DEFAULTS: Readonly<SimclrAugmentationOptions> = Object.freeze({
  cropScale: [0.2, 1] as [number, number],
  colorJitterStrength: 0.5,
  blur: 'auto' as const,
});

/** Documentation of the augmentation options every two-view method shares. */
export const TWO_VIEW_AUGMENTATION_DOCS: Record<keyof SimclrAugmentationOptions, string> = {
  cropScale:
    'Area range [low, high] within [0.01, 1] of the random resized crop (default [0.2, 1]; 0.08 for 96+ px photos).',
  colorJitterStrength:
    'Colour distortion strength s in [0, 2]: jitter brightness/contrast/saturation 0.8s, hue 0.2s with p 0.8 (default 0.5; 0 disables jitter).',
  blur: '"auto" (default: Gaussian blur with p 0.5 only for inputs of 96 px or more), "on" or "off".',
};
