/** Export and import: safetensors (torchvision names), PyTorch checkpoints (read), tfjs LayersModel, ONNX, manifests, backbone folders, embeddings. */
export * from './backbone-store.js';
export * from './embeddings.js';
export * from './manifest.js';
export * from './onnx.js';
export * from './onnx-proto.js';
export {
  openTorchCheckpoint,
  type TorchCheckpoint,
  type TorchDtype,
  TorchStorage,
  TorchTensor,
  withTorchCheckpoint,
} from './pytorch/checkpoint.js';
export { type BackboneCandidate, findBackbones, flattenTensors, pickBackbone } from './pytorch/find-backbone.js';
export { type CheckpointSummary, formatCheckpointSummary, inspectCheckpoint } from './pytorch/inspect.js';
export { readTorchBackbone, type TorchBackboneContents } from './pytorch/read-backbone.js';
export * from './safetensors.js';
export * from './tfjs-model.js';
export * from './torchvision.js';
