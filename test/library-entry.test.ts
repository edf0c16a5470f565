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
});
