/** Choosing which images to label next: strategies, the `selfsup select` job, and the simulated labeling study. */
export * from './geometry.js';
export * from './scores.js';
export * from './select-images.js';
export * from './strategies.js';
export * from './study.js';
