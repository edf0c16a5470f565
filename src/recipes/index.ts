/** Recipes: YAML as data, validated against schemas, with `extends`. */
export * from './finetune-recipe.js';
export * from './finetune-schema.js';
export * from './load.js';
export * from './optimizer-schema.js';
export * from './pretrain-recipe.js';
export * from './pretrain-schema.js';
export * from './reference.js';
export * from './schema.js';
