/**
 * An exponential moving average of a model's weights (Polyak averaging), the
 * copy that is evaluated instead of the last step's weights: FixMatch's paper
 * evaluates "an exponential moving average of model parameters" (decay 0.999),
 * and the average of a short few-label finetune is less noisy than its last step.
 *
 * `sum <- d sum + (1 - d) weight` after every update from `sum = 0`, and the average is
 * `sum / (1 - d^n)` after n updates (the bias correction Adam applies to its moments):
 * the weights of the averaged steps only, step k of n weighted by `d^(n - k)`, whatever
 * the decay and the run's length (the weights before the first update do not count).
 * BatchNorm running statistics are averaged like the weights. `apply()` writes the
 * average into the model.
 */
import * as tf from '@tensorflow/tfjs';
import type { NamedTensorVariable } from './checkpoint.js';

/**
 * `target <- m target + (1 - m) source` for each pair, in one tidy: the moving-average
 * step of this average and of a momentum target network (task-state.ts).
 */
export function moveAverage(pairs: Iterable<{ target: tf.Variable; source: tf.Tensor }>, m: number): void {
  tf.tidy(() => {
    for (const { target, source } of pairs) target.assign(tf.add(tf.mul(target, m), tf.mul(source, 1 - m)));
  });
}

export class WeightEma {
  /** Updates so far (the bias correction's n; saved with checkpoints). */
  updates = 0;
  private readonly pairs: { name: string; source: tf.Variable; shadow: tf.Variable }[];

  constructor(
    variables: NamedTensorVariable[],
    readonly decay: number,
  ) {
    if (!(decay > 0 && decay < 1)) throw new RangeError(`EMA decay must be in (0, 1), got ${decay}`);
    this.pairs = variables
      .filter((v) => v.variable.dtype === 'float32')
      .map((v) => ({
        name: v.name,
        source: v.variable,
        // Inside a tidy: the zeros the variable starts from are not left behind.
        shadow: tf.tidy(() => tf.variable(tf.zerosLike(v.variable), false, undefined, 'float32')),
      }));
  }

  /** Folds the current weights into the average. */
  update(): void {
    moveAverage(
      this.pairs.map((p) => ({ target: p.shadow, source: p.source })),
      this.decay,
    );
    this.updates++;
  }

  /** Writes the average into the model's variables (no-op before the first update). */
  apply(): void {
    if (this.updates === 0) return;
    const correction = 1 / (1 - this.decay ** this.updates);
    tf.tidy(() => {
      for (const { source, shadow } of this.pairs) source.assign(tf.mul(shadow, correction));
    });
  }

  /** The (uncorrected) running sums as checkpoint variables, `ema.<name>`. */
  stateVariables(): NamedTensorVariable[] {
    return this.pairs.map((p) => ({ name: `ema.${p.name}`, variable: p.shadow }));
  }

  dispose(): void {
    for (const p of this.pairs) p.shadow.dispose();
  }
}
