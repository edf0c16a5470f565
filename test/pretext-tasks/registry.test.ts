import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getTask, listTasks, registerTask, unregisterTask } from '../../pretext-tasks/registry.js';
import { initEngine } from '../../src/engine/backend.js';
import { UsageError } from '../../src/util/errors.js';
import { createRng } from '../../src/util/rng.js';
import { createTinyBackbone } from '../support/tiny-backbone.js';
import { createTrainer, seededImages } from '../support/trainer.js';
import { flipTask } from './fixtures/flip-task.js';

describe('pretext task registry', () => {
  beforeAll(() => {
    initEngine({ quiet: true });
    expect(tf.getBackend()).toBe('tensorflow');
  });
  afterAll(() => {
    unregisterTask('flip');
  });

  it('lists the built-ins and finds them by id', () => {
    expect(listTasks()).toEqual([
      'rotation',
      'contrastive',
      'jigsaw',
      'byol',
      'simsiam',
      'barlow-twins',
      'vicreg',
      'moco',
      'dino',
    ]);
    for (const id of listTasks()) expect(getTask(id).id).toBe(id);
  });

  it('an unknown id is a usage error listing the valid ids', () => {
    expect(() => getTask('simclr')).toThrow(UsageError);
    expect(() => getTask('simclr')).toThrow(
      'Unknown pretext task "simclr"; valid ids: rotation, contrastive, jigsaw, byol, simsiam, barlow-twins, vicreg, moco, dino',
    );
  });

  it('a user task in one file registers, validates and trains like a built-in', () => {
    registerTask(flipTask);
    expect(listTasks()).toContain('flip');
    const task = getTask('flip');
    expect(() => task.validate({ flipProbability: 2 })).toThrow(
      'Expected a number >= 0 and <= 1 for task.options.flipProbability but received 2 (number)',
    );
    const options = task.validate({});
    const rng = createRng('flip');
    const backbone = createTinyBackbone(1, rng.derive('backbone'));
    const heads = task.createHeads(options, backbone.featureDim, rng.derive('heads'));
    const trainer = createTrainer(task, options, backbone, heads, 0.02);
    const views = [seededImages(8, 10, 1, rng.derive('data'))];
    const losses: number[] = [];
    for (let i = 0; i < 12; i++) losses.push(trainer.step(views, rng.derive('step')).loss);
    expect(losses[11]).toBeLessThan(losses[0]);
    trainer.dispose();
    heads.classifier.dispose();
    backbone.dispose();
    views[0].dispose();
  });

  it('refuses a taken id unless replacing, and malformed tasks', () => {
    expect(() => registerTask(flipTask)).toThrow(
      'A pretext task with id "flip" is already registered; pass { replace: true } to replace it',
    );
    expect(() => registerTask(flipTask, { replace: true })).not.toThrow();
    expect(() => registerTask({ ...flipTask, id: 'Bad Id' })).toThrow(/kebab-case string id/);
    expect(() => registerTask({ ...flipTask, id: 'no-step', step: undefined } as unknown as typeof flipTask)).toThrow(
      'Pretext task "no-step" must implement step() (see pretext-tasks/types.ts)',
    );
  });
});
