/**
 * The one step trainer of the tests (a pretext task's loss over a backbone and
 * its heads, with Adam) and seeded images for it.
 */
import * as tf from '@tensorflow/tfjs';
import type { AnyPretextTask } from '../../pretext-tasks/registry.js';
import type { Backbone, Head } from '../../src/backbones/types.js';
import type { Rng } from '../../src/util/rng.js';

/** Seeded images in [-1, 1]: smooth blobs plus noise, so they are not symmetric. [B, size, size, channels]. */
export function seededImages(batch: number, size: number, channels: number, rng: Rng): tf.Tensor4D {
  const values = new Float32Array(batch * size * size * channels);
  for (let b = 0; b < batch; b++) {
    const cx = rng.uniform(0, size);
    const cy = rng.uniform(0, size);
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        for (let c = 0; c < channels; c++) {
          const blob = Math.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (size * 2));
          values[((b * size + y) * size + x) * channels + c] = blob + (x / size) * 0.5 + 0.3 * rng.normal();
        }
      }
    }
  }
  return tf.tensor4d(values, [batch, size, size, channels]);
}

export interface Trainer {
  /** One optimisation step; returns the loss and metric values. */
  step(views: tf.Tensor[], rng: Rng): { loss: number; metrics: Record<string, number> };
  dispose(): void;
}

/** An Adam trainer over the backbone and the task's heads. */
export function createTrainer(
  task: AnyPretextTask,
  options: object,
  backbone: Backbone,
  heads: unknown,
  learningRate = 0.01,
): Trainer {
  const optimizer = tf.train.adam(learningRate);
  const modules: Head[] = Object.values(task.headModules(heads));
  const trainable = [...backbone.variables(), ...modules.flatMap((m) => m.variables())]
    .filter((v) => v.trainable)
    .map((v) => v.variable);
  return {
    step(views, rng) {
      return tf.tidy(() => {
        let metricValues: Record<string, number> = {};
        const { value, grads } = tf.variableGrads(() => {
          const out = task.step({ backbone, heads, views, training: true, rng }, options);
          metricValues = Object.fromEntries(Object.entries(out.metrics).map(([k, v]) => [k, v.dataSync()[0]]));
          return out.loss;
        }, trainable);
        optimizer.applyGradients(grads);
        return { loss: value.dataSync()[0], metrics: metricValues };
      });
    },
    dispose() {
      optimizer.dispose();
    },
  };
}
