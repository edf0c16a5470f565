/**
 * The views the pretext tasks use; they live with every other named view in
 * src/data/augment/presets.ts and are re-exported here for task authors.
 */
export {
  blurKernelSize,
  mildView,
  normalizeStep,
  type SimclrAugmentationOptions,
  simclrView,
} from '../src/data/augment/presets.js';
