/** Pretext tasks: the plugin interface, the registry, the built-in tasks and their losses. */
export * from './augmentations.js';
export * from './barlow-twins.js';
export * from './byol.js';
export * from './contrastive.js';
export * from './dino.js';
export * from './jigsaw.js';
export * from './losses.js';
export * from './moco.js';
export * from './options.js';
export * from './permutations.js';
export * from './registry.js';
export * from './rotation.js';
export * from './simsiam.js';
export * from './two-view.js';
export type * from './types.js';
export * from './vicreg.js';
