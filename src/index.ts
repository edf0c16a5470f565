/**
 * selfsup library entry point. The calls most programs need are top-level with
 * stable names (documented in docs/library.md): initEngine, scanFolder,
 * loadPretrainRecipe / resolvePretrainRecipe, pretrain, exportBackbone,
 * loadFinetuneRecipe / resolveFinetuneRecipe, runFinetune, runEvaluation,
 * exportClassifierOnnx, embedFolder, createBackbone, loadBackbone. Everything
 * else is reachable through the area namespaces (backbones, data, exporting,
 * finetune, probes, ...).
 */

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
export { type ScanOptions, type ScanSummary, scanFolder } from './data/scan.js';
export type { ImageSource, PipelineSpec, RawImage } from './data/types.js';
export { type DemoOptions, type DemoOutputs, type DemoResult, formatDemoResult, runDemo } from './demo/demo.js';
export { type FewShotOptions, type FewShotResult, runFewShot } from './demo/fewshot.js';
export * from './embed/index.js';
export * from './engine/index.js';
export {
  type ExportFormat,
  exportBackbone,
  type LoadBackboneOptions,
  type LoadedBackbone,
  loadBackbone,
  saveBackbone,
} from './export/backbone-store.js';
export * as exporting from './export/index.js';
export type { BackboneManifest, ManifestExtras } from './export/manifest.js';
export { backboneToOnnx, type OnnxGraphOptions } from './export/onnx.js';
export { inspectCheckpoint } from './export/pytorch/inspect.js';
export { type BudgetOptions, type BudgetResult, runBudget } from './finetune/budget.js';
export { type EvalJob, type EvalSummary, runEvaluation } from './finetune/eval-job.js';
export { type ClassifierOnnxOptions, exportClassifierOnnx } from './finetune/export-onnx.js';
export * as finetune from './finetune/index.js';
export { loadClassifier } from './finetune/model-io.js';
export { type FinetuneJob, type FinetuneSummary, runFinetune } from './finetune/run.js';
export * as probes from './probes/index.js';
export { knnClassify, linearProbe, probeBackbone } from './probes/index.js';
export {
  applyRecipeOverrides,
  type FinetuneRecipe,
  loadFinetuneRecipe,
  loadPretrainRecipe,
  type PretrainRecipe,
  parseLrOverride,
  renderRecipesReference,
  resolveFinetuneRecipe,
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
