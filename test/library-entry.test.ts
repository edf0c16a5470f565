import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import * as selfsup from '../src/index.js';

describe('library entry point', () => {
  it('exposes every area and the common calls, and they work together', () => {
    expect(selfsup.initEngine().backend).toBe('tensorflow');
    expect(selfsup.backboneNames()).toEqual(['resnet18', 'resnet34', 'resnet50']);
    expect(selfsup.listTasks()).toEqual(expect.arrayContaining(['rotation', 'contrastive', 'jigsaw']));
    for (const area of [selfsup.backbones, selfsup.data, selfsup.finetune, selfsup.exporting, selfsup.pretextTasks]) {
      expect(Object.keys(area).length).toBeGreaterThan(5);
    }
    const before = tf.memory().numTensors;
    const backbone = selfsup.createBackbone('resnet18', { widthMultiplier: 0.125, stem: 'small', inputChannels: 1 });
    const features = tf.tidy(() => backbone.features(tf.zeros([2, 16, 16, 1]) as tf.Tensor4D, false).shape);
    expect(features).toEqual([2, backbone.featureDim]);
    backbone.dispose();
    expect(tf.memory().numTensors).toBe(before);
    expect(() => selfsup.getTask('nope')).toThrow(/rotation/);
  });

  it('has the journey calls top-level (docs/library.md), and a recipe resolves without passing the task registry', () => {
    const exported = new Map(Object.entries(selfsup));
    for (const name of [
      'initEngine',
      'scanFolder',
      'loadPretrainRecipe',
      'resolvePretrainRecipe',
      'pretrain',
      'exportBackbone',
      'loadFinetuneRecipe',
      'resolveFinetuneRecipe',
      'runFinetune',
      'runEvaluation',
      'exportClassifierOnnx',
      'runBudget',
      'embedFolder',
      'createBackbone',
      'loadBackbone',
      'saveBackbone',
      'backboneToOnnx',
      'loadClassifier',
    ]) {
      expect(typeof exported.get(name), name).toBe('function');
    }
    const recipe = selfsup.resolvePretrainRecipe({ task: { id: 'rotation' }, input: { channels: 1, size: 28 } });
    expect(recipe.task.id).toBe('rotation');
    expect(recipe.input.mean).toEqual([0.5]);
    expect(() => selfsup.resolvePretrainRecipe({ task: { id: 'nope' } })).toThrow(/rotation/);
  });
});
