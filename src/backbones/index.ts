/** ResNet backbones with torchvision-compatible weight names. */
export * from './ops.js';
export * from './registry.js';
export * from './resnet.js';
export type * from './types.js';
