/** ResNet backbones with torchvision-compatible weight names, and heads built from block specs. */
export * from './heads.js';
export * from './ops.js';
export * from './registry.js';
export * from './resnet.js';
export type * from './types.js';
