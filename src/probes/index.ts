/** Probes of frozen features: extraction, linear probe, kNN classification, top-k cosine search. */
export * from './cosine-search.js';
export * from './features.js';
export * from './knn.js';
export * from './linear-probe.js';
