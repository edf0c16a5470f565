/** `--compile` and `--precision` of the commands that run an evaluation-mode forward pass (eval, embed). */
import { COMPILE_SETTINGS, PRECISION_SETTINGS } from '../engine/graph-path.js';
import type { OptionRow } from './common.js';

export const FORWARD_PASS_OPTIONS: readonly OptionRow[] = [
  {
    flags: '--compile <mode>',
    help: 'the forward pass as a compiled TensorFlow graph: auto = where the graph addon is built and the model compiles (a ResNet, a head of linear/BatchNorm/ReLU blocks), else eager with one line saying why; on = fail when it cannot; off = eager',
    choices: COMPILE_SETTINGS,
    default: 'auto',
  },
  {
    flags: '--precision <p>',
    help: 'float32; bfloat16 (compiled graph only: convolutions and matrix products in bfloat16 through oneDNN); auto = bfloat16 when compiled on a CPU with AVX512-BF16 or AMX',
    choices: PRECISION_SETTINGS,
    default: 'float32',
  },
];
