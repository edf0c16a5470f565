/** Training: the pretraining loop, the step engine, optimizers, schedules, checkpoints, metrics and monitors (finetuning uses them too). */
export * from './checkpoint.js';
export { embeddingSpread, isCollapsed } from './collapse.js';
export {
  type CompiledStepResult,
  type CompiledStepSpec,
  CompiledTrainingStep,
  compiledStepProblem,
  type MirroredVariable,
  type Precision,
} from './compiled-step.js';
export * from './components.js';
export * from './loop.js';
export * from './metrics.js';
export * from './monitor.js';
export * from './optimizers.js';
export * from './run-dir.js';
export * from './schedules.js';
export {
  type ComputedStep,
  computeStep,
  type Gradients,
  type LossOutput,
  lossAndGradients,
  type StepInputs,
} from './step.js';
export { momentumAt, TaskState, type TaskStateInputs } from './task-state.js';
export { chooseTrainingPath, type TrainingPath } from './training-path.js';
