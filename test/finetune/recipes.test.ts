import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { validatePipeline } from '../../src/data/augment/pipeline.js';
import { resolveInput, trainOptionsOf } from '../../src/finetune/recipe.js';
import { loadFinetuneRecipe, resolveFinetuneRecipe } from '../../src/recipes/finetune-recipe.js';

const RECIPES = path.resolve(import.meta.dirname, '../../recipes');
const files = readdirSync(RECIPES).filter((f) => f.startsWith('finetune-') && f.endsWith('.yaml'));
const manifest = { inputSize: 28, mean: [0.5], std: [0.5] };

describe('finetune recipes', () => {
  it('every shipped finetune recipe validates and converts to training options', () => {
    expect(files.length).toBeGreaterThanOrEqual(5);
    for (const file of files) {
      const recipe = loadFinetuneRecipe(path.join(RECIPES, file));
      const input = resolveInput(recipe, 1, manifest);
      const options = trainOptionsOf(recipe, input, file);
      expect(options.stages.length).toBeGreaterThan(0);
      expect(recipe.name).toBe(file.replace('.yaml', ''));
    }
    const focal = loadFinetuneRecipe(path.join(RECIPES, 'finetune-focal.yaml'));
    expect(focal.loss.type).toBe('focal');
    expect(focal.stages).toEqual([{ epochs: 100, trainable: ['head'] }]); // from extends
    const fixmatch = trainOptionsOf(
      loadFinetuneRecipe(path.join(RECIPES, 'finetune-fixmatch.yaml')),
      resolveInput(focal, 1, manifest),
    );
    expect(fixmatch.fixmatch?.strongView.some((s) => s.op === 'solarize')).toBe(true);
    expect(fixmatch.fixmatch?.strongView.some((s) => s.op === 'randomErasing')).toBe(true);
    // The default views are valid pipelines (the same checks a recipe's own views get).
    expect(validatePipeline(fixmatch.fixmatch?.strongView, 1, 'strong')).toEqual([28, 28, 1]);
    expect(validatePipeline(fixmatch.fixmatch?.weakView, 1, 'weak')).toEqual([28, 28, 1]);
  });

  it('errors name the key, what was expected and what was given', () => {
    expect(() => resolveFinetuneRecipe({ loss: { type: 'hinge' } })).toThrow(
      'recipe.loss.type: Expected one of "cross-entropy", "focal" but received "hinge" (string)',
    );
    expect(() => resolveFinetuneRecipe({ train: { optimizer: { lr: 'fast' } } })).toThrow(
      'recipe.train.optimizer.lr: Expected a number greater than 0 and at most 10 but received "fast" (string)',
    );
    expect(() => resolveFinetuneRecipe({ fixmatch: { treshold: 0.9 } })).toThrow(
      /recipe\.fixmatch\.treshold: Unknown key/,
    );
    expect(() => resolveFinetuneRecipe({ stages: [{ epochs: 0, trainable: ['head'] }] })).toThrow(
      /recipe\.stages\[0\]\.epochs/,
    );
    const recipe = resolveFinetuneRecipe({ augment: { train: 'extreme' } });
    expect(() => trainOptionsOf(recipe, resolveInput(recipe, 1, manifest))).toThrow(
      'recipe.augment.train: Expected one of "none", "weak", "light", "medium", "strong" or a list of augmentation steps but received "extreme" (string)',
    );
    const bad = resolveFinetuneRecipe({ augment: { train: [{ op: 'twirl' }] } });
    expect(() => trainOptionsOf(bad, resolveInput(bad, 1, manifest))).toThrow(/recipe\.augment\.train\[0\]/);
    const wrongMean = resolveFinetuneRecipe({ input: { mean: [0.5, 0.5, 0.5] } });
    expect(() => resolveInput(wrongMean, 1, manifest)).toThrow(
      'recipe.input.mean: Expected a list of exactly 1 numbers (one per channel) but received [0.5, 0.5, 0.5]',
    );
  });

  it('a recipe can spell its own augmentation with randomCrop (pad + translate, CIFAR style)', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'selfsup-recipe-'));
    const file = path.join(dir, 'finetune-crop.yaml');
    writeFileSync(
      file,
      [
        'augment:',
        '  train:',
        '    - {op: randomCrop, size: 28, padding: 4}',
        '    - {op: horizontalFlip}',
        '    - {op: normalize, mean: [0.5], std: [0.5]}',
        '',
      ].join('\n'),
    );
    const recipe = loadFinetuneRecipe(file);
    rmSync(dir, { recursive: true, force: true });
    const options = trainOptionsOf(recipe, resolveInput(recipe, 1, manifest));
    expect(options.trainView[0]).toEqual({ op: 'randomCrop', size: 28, padding: 4 });
    expect(validatePipeline(options.trainView, 1, 'train')).toEqual([28, 28, 1]);
    const bad = resolveFinetuneRecipe({ augment: { train: [{ op: 'randomCrop', size: 28, padding: 'four' }] } });
    expect(() => trainOptionsOf(bad, resolveInput(bad, 1, manifest))).toThrow(
      'Expected an integer between 0 and 4096 for recipe.augment.train[0].padding but received "four" (string)',
    );
    const misspelt = resolveFinetuneRecipe({
      fixmatch: { enabled: true, weakView: [{ op: 'randomCrop', size: 28, padding: 4, fil: 0.5 }] },
    });
    expect(() => trainOptionsOf(misspelt, resolveInput(misspelt, 1, manifest))).toThrow(
      'Unknown key recipe.fixmatch.weakView[0].fil for op "randomCrop" (allowed: size, padding, fill) with value 0.5 (number)',
    );
  });

  it('keys of the old finetuning dialect name their new spelling', () => {
    const cases: Array<[unknown, string]> = [
      [
        { train: { learningRate: 0.01 } },
        'recipe.train.learningRate: renamed: write train.optimizer.lr (finetuning recipes use the pretraining dialect)',
      ],
      [
        { train: { optimizer: 'adam' } },
        'recipe.train.optimizer: Expected a mapping {name, ...} but received "adam" (string): write train.optimizer: {name: adam} (finetuning recipes use the pretraining dialect)',
      ],
      [
        { train: { optimizer: 'momentum' } },
        'recipe.train.optimizer: Expected a mapping {name, ...} but received "momentum" (string): write train.optimizer: {name: sgd, momentum: 0.9, nesterov: true} (finetuning recipes use the pretraining dialect)',
      ],
      [
        { train: { schedule: 'cosine' } },
        'recipe.train.schedule: Expected a mapping {name, ...} but received "cosine" (string): write train.schedule: {name: cosine} (finetuning recipes use the pretraining dialect)',
      ],
      [
        { train: { weightDecay: 0.001 } },
        'recipe.train.weightDecay: renamed: write train.optimizer.weightDecay (decoupled decay as before: train.optimizer.name adamw) (finetuning recipes use the pretraining dialect)',
      ],
      [
        { train: { warmupEpochs: 1 } },
        'recipe.train.warmupEpochs: renamed: write train.schedule.warmupEpochs (finetuning recipes use the pretraining dialect)',
      ],
      [
        { train: { momentum: 0.9 } },
        'recipe.train.momentum: renamed: write train.optimizer.momentum (finetuning recipes use the pretraining dialect)',
      ],
      [
        { probe: { learningRate: 0.01 } },
        'recipe.probe.learningRate: renamed: write probe.lr (finetuning recipes use the pretraining dialect)',
      ],
    ];
    for (const [data, message] of cases) expect(() => resolveFinetuneRecipe(data)).toThrow(message);
    // The same spelling as pretraining recipes: one optimizer/schedule vocabulary.
    const recipe = resolveFinetuneRecipe({
      train: { optimizer: { name: 'lars', lr: 0.2 }, schedule: { name: 'step', milestones: [3] } },
    });
    expect(recipe.train.optimizer).toMatchObject({ name: 'lars', lr: 0.2, weightDecay: 0 });
    expect(recipe.train.schedule).toMatchObject({ name: 'step', milestones: [3], gamma: 0.1 });
  });

  it('one set of defaults: a recipe without stages trains the head for 30 epochs with Adam at 0.001', () => {
    const recipe = resolveFinetuneRecipe({});
    expect(recipe.stages).toEqual([{ epochs: 30, trainable: ['head'] }]);
    expect(recipe.train.optimizer).toMatchObject({ name: 'adam', lr: 0.001, weightDecay: 0 });
    expect(recipe.train.backboneLrMultiplier).toBe(0.1);
    expect(recipe.probe).toEqual({ epochs: 0, lr: 0.01, batchSize: 256 });
  });
});
