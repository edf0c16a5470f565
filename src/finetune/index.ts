/** Finetuning: classifiers, losses, semi-supervised training, evaluation, label problems, budget studies. */
export * from './budget.js';
export * from './classifier.js';
export * from './data.js';
export * from './eval-job.js';
export * from './evaluate.js';
export * from './feature-standardization.js';
export * from './fixmatch.js';
export * from './image-set.js';
export * from './label-problems.js';
export * from './losses.js';
export * from './metrics.js';
export * from './model-io.js';
export * from './prepare-data.js';
export * from './recipe.js';
export * from './run.js';
export * from './sampler.js';
export * from './train.js';
