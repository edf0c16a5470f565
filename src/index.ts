/** selfsup library entry point. */

export * as pretextTasks from '../pretext-tasks/index.js';
export { getTask, listTasks, registerTask } from '../pretext-tasks/registry.js';
export type { PretextTask } from '../pretext-tasks/types.js';
// The rest of the library, by area. Namespaces keep generic names (normalize,
// Split, classCounts, ...) from colliding across areas.
export * as backbones from './backbones/index.js';
// The calls most programs start from.
export { backboneNames, createBackbone } from './backbones/registry.js';
export type { Backbone, BackboneConfig, Head, NamedVariable } from './backbones/types.js';
export * as data from './data/index.js';
export { createLoader } from './data/loader.js';
export { scanFolder } from './data/scan.js';
export type { ImageSource, PipelineSpec, RawImage } from './data/types.js';
export { type DemoOptions, type DemoOutputs, type DemoResult, formatDemoResult, runDemo } from './demo/demo.js';
export * from './embed/index.js';
export * from './engine/index.js';
export { exportBackbone, loadBackbone, saveBackbone } from './export/backbone-store.js';
export * as exporting from './export/index.js';
export { inspectCheckpoint } from './export/pytorch/inspect.js';
export * as finetune from './finetune/index.js';
export * as probes from './probes/index.js';
export { knnClassify, linearProbe, probeBackbone } from './probes/index.js';
export {
  applyRecipeOverrides,
  loadPretrainRecipe,
  type PretrainRecipe,
  parseLrOverride,
  renderRecipesReference,
  resolvePretrainRecipe,
} from './recipes/index.js';
export * as report from './report/plot.js';
export * as select from './select/index.js';
export {
  runSelectionStudyJob,
  type SelectImagesOptions,
  type SelectImagesResult,
  selectFromPool,
  selectImages,
} from './select/index.js';
export {
  DivergenceError,
  type PretrainOptions,
  type PretrainResult,
  pretrain,
  type TrainEvent,
} from './train/index.js';
export * as arrow from './util/arrow.js';
export { InputError, UsageError } from './util/errors.js';
export { createRng, type Rng } from './util/rng.js';
export { VERSION } from './version.js';
