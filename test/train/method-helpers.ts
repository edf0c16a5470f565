/**
 * A real method (MoCo v2: momentum key encoder + queue) through the real loader
 * on generated images, with the tiny conv net as backbone, for the loop tests
 * that need a task with cross-step state.
 */
import { getTask } from '../../pretext-tasks/registry.js';
import { createLoader } from '../../src/data/loader.js';
import type { ImageSource } from '../../src/data/types.js';
import type { PretrainRecipe } from '../../src/recipes/pretrain-schema.js';
import type { TrainComponents } from '../../src/train/components.js';
import { makeSource, tinyRecipe } from '../support/pretraining.js';
import { createTinyBackbone } from '../support/tiny-backbone.js';

export function methodComponents(source: ImageSource = makeSource(48, 12)): Partial<TrainComponents> {
  return {
    getTask,
    createBackbone: (config, rng) => createTinyBackbone(config.inputChannels, rng),
    openSource: async () => source,
    createLoader,
  };
}

/** MoCo with a queue of 20 keys (not a multiple of the batch of 8: the ring wraps mid-batch). */
export function mocoRecipe(overrides: Record<string, unknown> = {}): PretrainRecipe {
  return tinyRecipe({
    name: 'moco',
    task: {
      id: 'moco',
      options: { queueSize: 20, projectionDim: 8, hiddenDim: 16, momentum: 0.9, momentumEnd: 1, cropScale: [0.5, 1] },
    },
    input: { size: 12, channels: 1 },
    data: { batchSize: 8, workers: 0 },
    ...overrides,
  });
}
