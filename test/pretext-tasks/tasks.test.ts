/**
 * Every built-in task trains a small ResNet-18 (width 0.125, small stem): a few
 * Adam steps on a fixed tiny batch lower the loss, and the live tensor count stays
 * flat across steps.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { contrastiveTask } from '../../pretext-tasks/contrastive.js';
import { jigsawTask } from '../../pretext-tasks/jigsaw.js';
import type { AnyPretextTask } from '../../pretext-tasks/registry.js';
import { rotationTask } from '../../pretext-tasks/rotation.js';
import { createBackbone } from '../../src/backbones/registry.js';
import type { Backbone } from '../../src/backbones/types.js';
import { initEngine } from '../../src/engine/backend.js';
import { createRng, type Rng } from '../../src/util/rng.js';
import { createTinyBackbone } from '../support/tiny-backbone.js';
import { createTrainer, seededImages } from '../support/trainer.js';

interface Case {
  name: string;
  task: AnyPretextTask;
  options: object;
  /** The fixed views of the tiny batch. */
  views: (rng: Rng) => tf.Tensor[];
  steps: number;
  /** Predictions the accuracy metric counts per step. */
  predictions: number;
}

const SIZE = 12;
const BATCH = 8;

const CASES: Case[] = [
  {
    name: 'rotation, all four',
    task: rotationTask,
    options: { mode: 'all-four' },
    views: (rng) => [seededImages(BATCH, SIZE, 1, rng)],
    steps: 12,
    predictions: BATCH * 4,
  },
  {
    name: 'rotation, random one, MLP head',
    task: rotationTask,
    options: { mode: 'random-one', head: 'mlp', hiddenDim: 16 },
    views: (rng) => [seededImages(BATCH, SIZE, 1, rng)],
    steps: 12,
    predictions: BATCH,
  },
  {
    name: 'contrastive',
    task: contrastiveTask,
    options: { temperature: 0.5, projectionDim: 8 },
    views: (rng) => {
      const images = seededImages(BATCH, SIZE, 1, rng);
      const noise = tf.mul(tf.randomNormal(images.shape, 0, 1, 'float32', 5), 0.2);
      const second = tf.add(tf.reverse(images, 2), noise); // flipped + noisy second view
      noise.dispose();
      return [images, second];
    },
    steps: 12,
    predictions: 2 * BATCH,
  },
  {
    name: 'jigsaw 2x2',
    task: jigsawTask,
    options: { grid: 2, permutationCount: 10, hiddenDim: 32 },
    views: (rng) => {
      const images = seededImages(BATCH * 4, 6, 1, rng);
      const tiles = tf.reshape(images, [BATCH, 4, 6, 6, 1]);
      images.dispose();
      return [tiles];
    },
    steps: 15,
    predictions: BATCH,
  },
];

describe('pretext tasks train on a tiny batch', () => {
  beforeAll(() => {
    initEngine({ quiet: true });
    expect(tf.getBackend()).toBe('tensorflow');
  });

  for (const c of CASES) {
    it(`${c.name}: loss goes down and the tensor count is flat`, () => {
      const rng = createRng(`tasks/${c.name}`);
      const options = c.task.validate(c.options);
      const backbone: Backbone = createBackbone('resnet18', {
        widthMultiplier: 0.125,
        stem: 'small',
        inputChannels: 1,
        rng: rng.derive('backbone'),
      });
      const heads = c.task.createHeads(options, backbone.featureDim, rng.derive('heads'));
      const trainer = createTrainer(c.task, options, backbone, heads, 0.01);
      const views = c.views(rng.derive('data'));

      const losses: number[] = [];
      const counts: number[] = [];
      for (let i = 0; i < c.steps; i++) {
        // The same step stream every time: the same rotations / permutations, a fixed task.
        const { loss, metrics } = trainer.step(views, rng.derive('step'));
        expect(Number.isFinite(loss)).toBe(true);
        // A fraction of right answers: a whole number of the step's predictions.
        const right = metrics.accuracy * c.predictions;
        expect(right).toBeCloseTo(Math.round(right), 4);
        expect(Math.round(right)).toBeGreaterThanOrEqual(0);
        expect(Math.round(right)).toBeLessThanOrEqual(c.predictions);
        losses.push(loss);
        counts.push(tf.memory().numTensors);
      }
      // Adam creates its slots on the first step; from then on nothing accumulates.
      expect(new Set(counts.slice(1)).size).toBe(1);
      const firstTwo = (losses[0] + losses[1]) / 2;
      const lastTwo = (losses[c.steps - 1] + losses[c.steps - 2]) / 2;
      expect(lastTwo).toBeLessThan(firstTwo * 0.9);

      // Evaluation mode runs too and returns embeddings [N, D].
      tf.tidy(() => {
        const out = c.task.step({ backbone, heads, views, training: false, rng: rng.derive('eval') }, options);
        expect(out.loss.shape).toEqual([]);
        expect(out.embeddings?.shape[1]).toBe(backbone.featureDim);
      });

      trainer.dispose();
      for (const head of Object.values(c.task.headModules(heads))) head.dispose();
      backbone.dispose();
      for (const v of views) v.dispose();
    });
  }

  it('jigsaw rejects a view that is not [B, T, h, w, C]', () => {
    const rng = createRng('jig-shape');
    const options = jigsawTask.validate({ grid: 3 });
    const backbone = createTinyBackbone(1, rng);
    const heads = jigsawTask.createHeads(options, backbone.featureDim, rng);
    tf.tidy(() => {
      const views = [tf.zeros([2, 4, 6, 6, 1])];
      expect(() => jigsawTask.step({ backbone, heads, views, training: true, rng }, options)).toThrow(
        'jigsaw expects a [B, 9, h, w, C] tile view but received [2, 4, 6, 6, 1]',
      );
    });
    heads.classifier.dispose();
    backbone.dispose();
  });
});
