/** The data layer: scanning, decoding, datasets, augmentation, batching. */
export * from './augment/color.js';
export * from './augment/geometry.js';
export * from './augment/image.js';
export * from './augment/pipeline.js';
export * from './augment/presets.js';
export * from './augment-batch.js';
export * from './datasets/file-list.js';
export * from './datasets/folder.js';
export * from './datasets/idx.js';
export * from './datasets/label-table.js';
export * from './datasets/split.js';
export * from './decode.js';
export * from './loader.js';
export * from './manifest.js';
export * from './scan.js';
export type * from './types.js';
export * from './walk.js';
export { setAugmentWorkerUrl, shutdownAugmentPool } from './worker-pool.js';
