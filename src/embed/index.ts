/** Embeddings of an image set: features, near-duplicates, outliers, a 2-D map (`selfsup embed`). */
export * from '../export/embeddings.js';
export * from './analyse.js';
export * from './embed-folder.js';
export * from './embed-images.js';
export * from './inputs.js';
export * from './projection.js';
export * from './similarity.js';
