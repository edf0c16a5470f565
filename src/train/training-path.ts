/**
 * Which training step a run uses — the compiled graph (compiled-step.ts) or the
 * eager step (step.ts) — and in which precision, from the recipe keys
 * `train.compile` and `train.precision`, what the run needs and what the machine
 * has. Eager is the reference and the fallback; the choice carries one sentence
 * saying why, for the run's start line and `selfsup doctor`.
 */
import { cpuBfloat16Features } from '../engine/graph-runtime.js';
import type { CompileSetting, PrecisionSetting } from '../recipes/optimizer-schema.js';
import { UsageError } from '../util/errors.js';
import type { Precision } from './compiled-step.js';

export interface TrainingPath {
  compiled: boolean;
  precision: Precision;
  /** One line: the path, the precision and why. */
  reason: string;
}

/**
 * The path for `compile` and `precision` given why the step cannot be compiled
 * (undefined when it can). Throws UsageError when the recipe asks for what
 * cannot be had: `on` with a problem, or bfloat16 on the eager path.
 */
export function chooseTrainingPath(
  compile: CompileSetting,
  precision: PrecisionSetting,
  problem: string | undefined,
  bfloat16Features: string[] = cpuBfloat16Features(),
): TrainingPath {
  const why = compile === 'off' ? 'recipe.train.compile is off' : problem;
  if (why) {
    if (compile === 'on')
      throw new UsageError(`recipe.train.compile is on but the training step cannot be compiled: ${why}`);
    if (precision === 'bfloat16') {
      throw new UsageError(
        `recipe.train.precision bfloat16 needs the compiled training step, which this run cannot use (${why}); use float32 or auto`,
      );
    }
    return { compiled: false, precision: 'float32', reason: `eager step, float32 (${why})` };
  }
  if (precision === 'auto') {
    return bfloat16Features.length
      ? {
          compiled: true,
          precision: 'bfloat16',
          reason: `compiled graph, bfloat16 (the CPU has ${bfloat16Features.join(', ')})`,
        }
      : {
          compiled: true,
          precision: 'float32',
          reason: 'compiled graph, float32 (the CPU has neither AVX512-BF16 nor AMX)',
        };
  }
  return { compiled: true, precision, reason: `compiled graph, ${precision} (recipe.train.precision)` };
}
