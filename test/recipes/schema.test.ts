import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { deepMerge, loadRecipeFile, RecipeError, readRecipeTree } from '../../src/recipes/load.js';
import {
  applyRecipeOverrides,
  loadPretrainRecipe,
  parseLrOverride,
  resolvePretrainRecipe,
} from '../../src/recipes/pretrain-recipe.js';
import { PRETRAIN_SCHEMA, type PretrainRecipe } from '../../src/recipes/pretrain-schema.js';
import { SchemaError, s, validate } from '../../src/recipes/schema.js';
import { makeTinyRotationTask } from '../support/pretraining.js';

const task = makeTinyRotationTask();
const getTask = (id: string) => {
  if (id !== task.id) throw new Error(`Unknown pretext task "${id}"; valid ids: tiny-rotation`);
  return task;
};
const minimal = { task: { id: 'tiny-rotation' } };
const errorOf = (fn: () => unknown): string => {
  try {
    fn();
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('expected an error');
};
const resolve = (data: unknown) => resolvePretrainRecipe(data, getTask);

describe('schema framework', () => {
  it('fills defaults and returns a full recipe', () => {
    const r = resolve(minimal);
    expect(r.train.optimizer).toEqual({
      name: 'sgd',
      lr: 0.1,
      momentum: 0.9,
      nesterov: false,
      weightDecay: 0.0005,
      betas: [0.9, 0.999],
      eps: 1e-8,
      trustCoefficient: 0.001,
    });
    expect(r.input.mean).toEqual([0.5, 0.5, 0.5]);
    expect(r.task.options).toEqual({ lossScale: 1, nanAfterSteps: 0, collapsedEmbeddings: false });
    expect(r.data.limit).toBeNull();
  });

  it('wrong type: names the full key, the expectation and the value', () => {
    expect(errorOf(() => resolve({ ...minimal, train: { optimizer: { lr: 'fast' } } }))).toBe(
      'recipe.train.optimizer.lr: Expected a number greater than 0 and at most 10 but received "fast" (string)',
    );
    expect(errorOf(() => resolve({ ...minimal, train: { epochs: 2.5 } }))).toBe(
      'recipe.train.epochs: Expected an integer between 1 and 100000 but received 2.5 (number)',
    );
    expect(errorOf(() => resolve({ ...minimal, train: { optimizer: { name: 'adagrad' } } }))).toBe(
      'recipe.train.optimizer.name: Expected one of "sgd", "adam", "adamw", "lars" but received "adagrad" (string)',
    );
    expect(errorOf(() => resolve({ ...minimal, train: { optimizer: { nesterov: 'yes' } } }))).toBe(
      'recipe.train.optimizer.nesterov: Expected true or false but received "yes" (string)',
    );
    expect(errorOf(() => resolve({ ...minimal, train: { optimizer: { betas: [0.9] } } }))).toBe(
      'recipe.train.optimizer.betas: Expected a list of exactly 2 (items: a number between 0 and 0.99999) but received [0.9] (array)',
    );
    expect(errorOf(() => resolve({ ...minimal, train: { schedule: { milestones: [3, 'x'] } } }))).toBe(
      'recipe.train.schedule.milestones[1]: Expected an integer >= 0 but received "x" (string)',
    );
    expect(errorOf(() => resolve({ ...minimal, train: 5 }))).toBe(
      'recipe.train: Expected a mapping of keys to values but received 5 (number)',
    );
  });

  it('unknown key: names it, lists the known keys and suggests the closest', () => {
    expect(errorOf(() => resolve({ ...minimal, train: { optimiser: {} } }))).toBe(
      'recipe.train.optimiser: Unknown key (known keys here: epochs, maxStepsPerEpoch, optimizer, schedule, lrOverrides, gradClipNorm, checkpointEveryEpochs, checkpointEverySteps, keepCheckpoints, divergence, compile, precision); did you mean "optimizer"?',
    );
    expect(errorOf(() => resolve({ ...minimal, colour: 1 }))).toMatch(
      /^recipe\.colour: Unknown key \(known keys here: name, seed, /,
    );
  });

  it('missing required key and bad lrOverrides keys', () => {
    expect(errorOf(() => resolve({}))).toBe('recipe.task.id: Missing required key; expected a string');
    expect(errorOf(() => resolve({ ...minimal, train: { lrOverrides: { three: 0.1 } } }))).toBe(
      'recipe.train.lrOverrides.three: Expected an integer key >= 0 but received "three" (string)',
    );
    expect(errorOf(() => resolve({ ...minimal, train: { lrOverrides: { 3: 0 } } }))).toBe(
      'recipe.train.lrOverrides.3: Expected a number greater than 0 and at most 10 but received 0 (number)',
    );
    expect(resolve({ ...minimal, train: { lrOverrides: { 3: 0.01 } } }).train.lrOverrides).toEqual({ 3: 0.01 });
  });

  it('cross-field checks: mean/std per channel, task id and task options', () => {
    expect(errorOf(() => resolve({ ...minimal, input: { channels: 1, mean: [0.5, 0.5, 0.5] } }))).toBe(
      'recipe.input.mean: Expected a list of exactly 1 numbers (one per channel) but received [0.5,0.5,0.5] (array)',
    );
    expect(errorOf(() => resolve({ ...minimal, input: { channels: 2 } }))).toBe(
      'recipe.input.channels: Expected 1 or 3 but received 2 (number)',
    );
    expect(errorOf(() => resolve({ task: { id: 'colour' } }))).toBe(
      'recipe.task.id: Unknown pretext task "colour"; valid ids: tiny-rotation',
    );
    expect(errorOf(() => resolve({ task: { id: 'tiny-rotation', options: { lossScale: 'x' } } }))).toBe(
      'lossScale must be a number',
    );
  });

  it('generic fields: exclusive bounds, optional values, maps of strings', () => {
    const field = s.object('t', {
      rate: s.number('r', { min: 0, exclusiveMin: true }),
      maybe: s.string('m', { optional: true }),
      names: s.map('n', 'string', s.integer('i', { max: 3 }), { default: {} }),
    });
    expect(validate(field, { rate: 1 }, 'x')).toEqual({ rate: 1, maybe: null, names: {} });
    expect(() => validate(field, { rate: 0 }, 'x')).toThrow(SchemaError);
    expect(errorOf(() => validate(field, { rate: 1, names: { a: 4 } }, 'x'))).toBe(
      'x.names.a: Expected an integer <= 3 but received 4 (number)',
    );
  });
});

describe('recipe files and extends', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'selfsup-recipes-'));
  const write = (name: string, text: string) => {
    const file = path.join(dir, name);
    writeFileSync(file, text);
    return file;
  };

  it('deep merge: mappings merge, lists and scalars replace', () => {
    expect(deepMerge({ a: { b: 1, c: [1, 2] }, d: 1 }, { a: { c: [3] }, e: 2 })).toEqual({
      a: { b: 1, c: [3] },
      d: 1,
      e: 2,
    });
  });

  it('extends: relative paths, lists, the file on top', () => {
    write('base-optim.yaml', 'train:\n  optimizer:\n    name: lars\n    lr: 0.3\n  epochs: 7\n');
    write('base-data.yaml', 'data:\n  batchSize: 64\ntrain:\n  epochs: 9\n');
    const file = write(
      'child.yaml',
      'extends: [base-optim.yaml, base-data.yaml]\ntask:\n  id: tiny-rotation\ntrain:\n  optimizer:\n    lr: 0.5\n',
    );
    const r = loadPretrainRecipe(file, getTask);
    expect(r.train.optimizer.name).toBe('lars');
    expect(r.train.optimizer.lr).toBe(0.5);
    expect(r.train.epochs).toBe(9);
    expect(r.data.batchSize).toBe(64);
    expect(r.name).toBe('child');
  });

  it('extends cycles are detected', () => {
    write('cycle-a.yaml', 'extends: cycle-b.yaml\n');
    write('cycle-b.yaml', 'extends: cycle-a.yaml\n');
    const message = errorOf(() => readRecipeTree(path.join(dir, 'cycle-a.yaml')));
    expect(message).toMatch(
      /cycle-a\.yaml: extends forms a cycle: .*cycle-a\.yaml -> .*cycle-b\.yaml -> .*cycle-a\.yaml$/,
    );
  });

  it('errors name the file: missing parent, bad YAML, bad key', () => {
    const missing = write('missing-parent.yaml', 'extends: nope.yaml\n');
    expect(errorOf(() => readRecipeTree(missing))).toBe(
      `${path.join(dir, 'nope.yaml')}: cannot read the recipe: does not exist`,
    );
    const bad = write('bad.yaml', 'task: [\n');
    expect(errorOf(() => readRecipeTree(bad))).toMatch(
      new RegExp(`^${bad}: not valid YAML at line \\d+, column \\d+ \\([A-Z_]+\\)$`),
    );
    const wrong = write('wrong.yaml', 'task:\n  id: tiny-rotation\ntrain:\n  optimizer:\n    lr: fast\n');
    const error = (() => {
      try {
        loadPretrainRecipe(wrong, getTask);
      } catch (e) {
        return e as RecipeError;
      }
    })();
    expect(error).toBeInstanceOf(RecipeError);
    expect(error?.message).toBe(
      `${wrong}: recipe.train.optimizer.lr: Expected a number greater than 0 and at most 10 but received "fast" (string)`,
    );
    expect(error?.keyPath).toBe('recipe.train.optimizer.lr');
    expect(() => loadRecipeFile(path.join(dir, 'x.json'), PRETRAIN_SCHEMA)).toThrow(/a recipe is a \.yaml file/);
  });
});

describe('command-line overrides', () => {
  it('parses --lr-override and applies epochs, seed, overrides', () => {
    expect(parseLrOverride('3=0.01')).toEqual([3, 0.01]);
    expect(errorOf(() => parseLrOverride('three=1'))).toBe(
      'Expected EPOCH=LR (a 0-based epoch and a learning rate greater than 0 and at most 10, e.g. 3=0.01) for --lr-override but received "three=1"',
    );
    const r = resolve({ ...minimal, train: { lrOverrides: { 1: 0.2 } } }) as PretrainRecipe;
    const o = applyRecipeOverrides(r, { epochs: 4, seed: 9, lrOverrides: { 2: 0.05 } });
    expect(o.train.epochs).toBe(4);
    expect(o.seed).toBe(9);
    expect(o.train.lrOverrides).toEqual({ 1: 0.2, 2: 0.05 });
    expect(r.train.lrOverrides).toEqual({ 1: 0.2 });
    expect(errorOf(() => applyRecipeOverrides(r, { epochs: 0 }))).toBe(
      'Expected an integer >= 1 for --epochs but received 0 (number)',
    );
  });
});
