/**
 * The weights' moving average (src/train/weight-ema.ts, finetuning's train.emaDecay):
 * the bias-corrected update rule, and a finetuning run that ends with the
 * average of its stage steps' weights rather than the last step's.
 */
import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { initEngine } from '../../src/engine/index.js';
import { Classifier } from '../../src/finetune/classifier.js';
import { trainOptionsOf } from '../../src/finetune/recipe.js';
import { trainClassifier } from '../../src/finetune/train.js';
import { finetuneDefaults } from '../../src/recipes/finetune-recipe.js';
import { WeightEma } from '../../src/train/weight-ema.js';
import { createRng } from '../../src/util/rng.js';
import { CLASSES, INPUT, quadrantSet } from '../support/labeled-sets.js';
import { createTinyBackbone } from '../support/tiny-backbone.js';

describe('WeightEma', () => {
  it('averages the updated weights with weights d^(n - k), bias-corrected; apply writes the average', () => {
    expect(initEngine({ quiet: true }).backend).toBe('tensorflow');
    const w = tf.variable(tf.tensor1d([1, 2]));
    const count = tf.variable(tf.scalar(3, 'int32'));
    const d = 0.5;
    const ema = new WeightEma(
      [
        { name: 'w', variable: w },
        { name: 'count', variable: count },
      ],
      d,
    );
    // Only float variables are averaged.
    expect(ema.stateVariables().map((v) => v.name)).toEqual(['ema.w']);
    const before = tf.memory().numTensors;
    tf.tidy(() => w.assign(tf.tensor1d([3, 6])));
    ema.update();
    tf.tidy(() => w.assign(tf.tensor1d([5, 10])));
    ema.update();
    tf.tidy(() => w.assign(tf.tensor1d([100, 100])));
    ema.update();
    expect(tf.memory().numTensors).toBe(before);
    expect(ema.updates).toBe(3);
    // (d^2 w1 + d w2 + w3) / (d^2 + d + 1): the initial [1, 2] does not count.
    const norm = d * d + d + 1;
    const expected = [(d * d * 3 + d * 5 + 100) / norm, (d * d * 6 + d * 10 + 100) / norm];
    ema.apply();
    expect(tf.memory().numTensors).toBe(before);
    const got = Array.from(w.dataSync());
    for (const [i, v] of expected.entries()) expect(got[i]).toBeCloseTo(v, 4);
    expect(count.dataSync()[0]).toBe(3);
    ema.dispose();
    w.dispose();
    count.dispose();
  });

  it('a finetuning run with train.emaDecay ends with the average of its stage steps, not the last weights', async () => {
    expect(initEngine({ quiet: true }).backend).toBe('tensorflow');
    const decay = 0.8;
    const options = {
      ...trainOptionsOf(finetuneDefaults(), INPUT),
      stages: [{ epochs: 2, trainable: ['all'] }],
      batchSize: 8,
      emaDecay: decay,
      seed: 3,
    };
    options.optimizer = { ...options.optimizer, name: 'sgd' as const, lr: 0.05, momentum: 0.9, weightDecay: 0 };
    const rng = createRng(5);
    const classifier = new Classifier(
      createTinyBackbone(1, rng.derive('backbone')),
      { input: INPUT, classNames: CLASSES, hidden: [] },
      rng.derive('head'),
    );
    const names = classifier.variables().map((v) => v.name);
    const read = () => classifier.variables().map((v) => Float64Array.from(v.variable.dataSync()));
    // The host's exponentially weighted sums of the weights after each step.
    let sums: Float64Array[] | undefined;
    let last: Float64Array[] = [];
    let n = 0;
    await trainClassifier(classifier, options, {
      labeled: quadrantSet(32, 9),
      onStep: () => {
        last = read();
        sums = (sums ?? last.map((a) => new Float64Array(a.length))).map((a, i) =>
          a.map((x, j) => decay * x + (1 - decay) * last[i][j]),
        );
        n++;
      },
    });
    expect(n).toBe(8);
    const average = sums!.map((a) => a.map((x) => x / (1 - decay ** n)));
    const final = read();
    let movedFromLast = 0;
    final.forEach((values, i) => {
      values.forEach((x, j) => {
        expect(x, names[i]).toBeCloseTo(average[i][j], 4);
        movedFromLast = Math.max(movedFromLast, Math.abs(x - last[i][j]));
      });
    });
    // The average is not the last step's weights.
    expect(movedFromLast).toBeGreaterThan(1e-3);
    classifier.dispose();
  }, 60_000);
});
