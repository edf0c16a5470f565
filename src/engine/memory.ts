/** Helpers around tfjs memory ownership (tidy/keep/dispose). */
import * as tf from '@tensorflow/tfjs';

/** Number of live tensors on the engine. */
export function liveTensors(): number {
  return tf.memory().numTensors;
}

/**
 * Runs `step` `steps` times and returns the live-tensor count after each step.
 * A flat series means the step leaks nothing.
 */
export async function tensorCountsOver(
  steps: number,
  step: (i: number) => unknown | Promise<unknown>,
): Promise<number[]> {
  const counts: number[] = [];
  for (let i = 0; i < steps; i++) {
    await step(i);
    counts.push(liveTensors());
  }
  return counts;
}

/** Disposes every tensor in a (possibly nested) record or array; ignores other values. */
export function disposeAll(value: unknown): void {
  if (value instanceof tf.Tensor) {
    value.dispose();
  } else if (Array.isArray(value)) {
    for (const v of value) disposeAll(v);
  } else if (value && typeof value === 'object') {
    for (const v of Object.values(value)) disposeAll(v);
  }
}
