/**
 * Which training step a run uses — the compiled graph (compiled-step.ts) or the
 * eager step (step.ts) — and in which precision, from the recipe keys
 * `train.compile` and `train.precision`, what the run needs and what the machine
 * has (the rule is chooseGraphPath's, src/engine/graph-path.ts). Eager is the
 * reference and the fallback; the choice carries one sentence saying why, for
 * the run's start line and `selfsup doctor`.
 */
import { chooseGraphPath, type GraphPath } from '../engine/graph-path.js';
import type { CompileSetting, PrecisionSetting } from '../recipes/optimizer-schema.js';

export type TrainingPath = GraphPath;

/**
 * The path for `compile` and `precision` given why the step cannot be compiled
 * (undefined when it can). Throws UsageError when the recipe asks for what
 * cannot be had: `on` with a problem, or bfloat16 on the eager path.
 */
export function chooseTrainingPath(
  compile: CompileSetting,
  precision: PrecisionSetting,
  problem: string | undefined,
  bfloat16Features?: string[],
  runsBfloat16?: boolean,
): TrainingPath {
  return chooseGraphPath(
    compile,
    precision,
    problem,
    {
      work: 'training step',
      eager: 'eager step',
      compileKey: 'recipe.train.compile',
      precisionKey: 'recipe.train.precision',
    },
    bfloat16Features,
    runsBfloat16,
  );
}
