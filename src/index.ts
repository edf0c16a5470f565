/** selfsup library entry point. */

export { type DemoOptions, type DemoOutputs, type DemoResult, formatDemoResult, runDemo } from './demo/demo.js';
export * from './embed/index.js';
export * from './engine/index.js';
export {
  applyRecipeOverrides,
  loadPretrainRecipe,
  type PretrainRecipe,
  parseLrOverride,
  renderRecipesReference,
  resolvePretrainRecipe,
} from './recipes/index.js';
export {
  DivergenceError,
  knnClassify,
  type PretrainOptions,
  type PretrainResult,
  pretrain,
  type TrainEvent,
} from './train/index.js';
export { VERSION } from './version.js';
