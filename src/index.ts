/** selfsup library entry point. */

export { type DemoOptions, type DemoOutputs, type DemoResult, formatDemoResult, runDemo } from './demo/demo.js';
export * from './embed/index.js';
export * from './engine/index.js';
export { VERSION } from './version.js';
