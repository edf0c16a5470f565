/** Export and import: safetensors (torchvision names), tfjs LayersModel, manifests, backbone folders, embeddings. */
export * from './backbone-store.js';
export * from './embeddings.js';
export * from './manifest.js';
export * from './safetensors.js';
export * from './tfjs-model.js';
export * from './torchvision.js';
