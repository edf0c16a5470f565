import { readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { validatePipeline } from '../../src/data/augment/pipeline.js';
import { loadFinetuneRecipe, resolveFinetuneRecipe, resolveInput, trainOptionsOf } from '../../src/finetune/recipe.js';

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
    expect(() => resolveFinetuneRecipe({ train: { learningRate: 'fast' } })).toThrow(
      /recipe\.train\.learningRate: Expected a number greater than 0 and at most 10 but received "fast" \(string\)/,
    );
    expect(() => resolveFinetuneRecipe({ fixmatch: { treshold: 0.9 } })).toThrow(
      /recipe\.fixmatch\.treshold: Unknown key/,
    );
    expect(() => resolveFinetuneRecipe({ stages: [{ epochs: 0, trainable: ['head'] }] })).toThrow(
      /recipe\.stages\[0\]\.epochs/,
    );
    const recipe = resolveFinetuneRecipe({ augment: { train: 'strong' } });
    expect(() => trainOptionsOf(recipe, resolveInput(recipe, 1, manifest))).toThrow(
      'recipe.augment.train: Expected "none", "weak" or a list of augmentation steps but received "strong" (string)',
    );
    const bad = resolveFinetuneRecipe({ augment: { train: [{ op: 'twirl' }] } });
    expect(() => trainOptionsOf(bad, resolveInput(bad, 1, manifest))).toThrow(/recipe\.augment\.train\[0\]/);
    const wrongMean = resolveFinetuneRecipe({ input: { mean: [0.5, 0.5, 0.5] } });
    expect(() => resolveInput(wrongMean, 1, manifest)).toThrow(
      'recipe.input.mean: Expected a list of exactly 1 numbers (one per channel) but received [0.5, 0.5, 0.5]',
    );
  });
});
