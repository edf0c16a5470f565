/** The backbone's recorded preprocessing is the default; a recipe that disagrees wins, with a warning. */
import { describe, expect, it } from 'vitest';
import { IMAGENET_MEAN, IMAGENET_STD } from '../../src/data/augment/presets.js';
import { preprocessingMismatches, resolveInput } from '../../src/finetune/recipe.js';
import { resolveFinetuneRecipe } from '../../src/recipes/finetune-recipe.js';

const imported = { inputSize: 224, mean: IMAGENET_MEAN, std: IMAGENET_STD };

describe('preprocessing of imported weights', () => {
  it('a recipe without input settings takes the manifest values, silently', () => {
    const recipe = resolveFinetuneRecipe({});
    expect(resolveInput(recipe, 3, imported)).toEqual({
      size: 224,
      channels: 3,
      mean: IMAGENET_MEAN,
      std: IMAGENET_STD,
    });
    expect(preprocessingMismatches(recipe, imported)).toEqual([]);
  });

  it('a recipe that disagrees wins and each difference is named', () => {
    const recipe = resolveFinetuneRecipe({ input: { size: 64, mean: [0.5, 0.5, 0.5], std: IMAGENET_STD } });
    expect(resolveInput(recipe, 3, imported)).toMatchObject({ size: 64, mean: [0.5, 0.5, 0.5] });
    expect(preprocessingMismatches(recipe, imported)).toEqual([
      "recipe input.mean [0.5, 0.5, 0.5] differs from the backbone's [0.485, 0.456, 0.406] (what its weights were trained with); using the recipe's",
      "recipe input.size 64 differs from the backbone's recommended 224 px; using the recipe's",
    ]);
  });
});
