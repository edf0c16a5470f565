/**
 * Whether a piece of work runs as a compiled graph (graph-runtime.ts) or
 * eagerly, and in which precision: the one rule behind the recipe keys
 * `train.compile` / `train.precision` (training steps) and the forward-pass
 * settings of evaluation, embedding and feature extraction. Eager is the
 * reference and the fallback; the choice carries one sentence saying why.
 */
import { UsageError } from '../util/errors.js';
import { cpuBfloat16Features, cpuRunsBfloat16 } from './graph-runtime.js';

/** The compiled graph where it can run (auto), always (on) or never (off). */
export type CompileSetting = 'auto' | 'on' | 'off';
/** bfloat16 where the CPU has AVX512-BF16 or AMX and the work is compiled (auto). */
export type PrecisionSetting = 'auto' | 'float32' | 'bfloat16';
export const COMPILE_SETTINGS: readonly CompileSetting[] = ['auto', 'on', 'off'];
export const PRECISION_SETTINGS: readonly PrecisionSetting[] = ['auto', 'float32', 'bfloat16'];

/** The precision a compiled graph runs its convolutions and matrix products in. */
export type Precision = 'float32' | 'bfloat16';

export interface GraphPath {
  compiled: boolean;
  precision: Precision;
  /** One line: the path, the precision and why. */
  reason: string;
}

/** How the work and its settings are named in messages. */
export interface GraphPathWording {
  /** What is compiled: `training step`, `forward pass`. */
  work: string;
  /** The eager path's name: `eager step`, `eager forward pass`. */
  eager: string;
  /** The names of the two settings: `recipe.train.compile`, `--precision`. */
  compileKey: string;
  precisionKey: string;
}

/**
 * The path for `compile` and `precision` given why the work cannot be compiled
 * (undefined when it can). Throws UsageError when the settings ask for what
 * cannot be had: `on` with a problem, bfloat16 on the eager path, or bfloat16 on a
 * CPU whose TensorFlow cannot run it (no AVX-512: `runsBfloat16` false).
 */
export function chooseGraphPath(
  compile: CompileSetting,
  precision: PrecisionSetting,
  problem: string | undefined,
  wording: GraphPathWording,
  bfloat16Features: string[] = cpuBfloat16Features(),
  runsBfloat16: boolean = bfloat16Features.length > 0 || cpuRunsBfloat16(),
): GraphPath {
  const why = compile === 'off' ? `${wording.compileKey} is off` : problem;
  if (why) {
    if (compile === 'on')
      throw new UsageError(`${wording.compileKey} is on but the ${wording.work} cannot be compiled: ${why}`);
    if (precision === 'bfloat16') {
      throw new UsageError(
        `${wording.precisionKey} bfloat16 needs the compiled ${wording.work}, which this run cannot use (${why}); use float32 or auto`,
      );
    }
    return { compiled: false, precision: 'float32', reason: `${wording.eager}, float32 (${why})` };
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
  if (precision === 'bfloat16' && !runsBfloat16) {
    throw new UsageError(
      `${wording.precisionKey} bfloat16 needs a CPU with AVX-512 (TensorFlow's oneDNN runs bfloat16 only there) and this CPU has none; use float32 or auto`,
    );
  }
  return { compiled: true, precision, reason: `compiled graph, ${precision} (${wording.precisionKey})` };
}
