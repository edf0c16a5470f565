/**
 * The pretraining loop on the compiled step (recipe.train.compile) against the
 * eager step: rotation-small.yaml shrunk to tiny generated data, three steps each.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { cpuBfloat16Features, cpuRunsBfloat16, graphRuntimeStatus } from '../../src/engine/graph-runtime.js';
import { initEngine } from '../../src/engine/index.js';
import type { PretrainRecipe } from '../../src/recipes/pretrain-schema.js';
import { chooseTrainingPath } from '../../src/train/training-path.js';
import { runPretrain, shrinkRecipe, wholeAndResumed } from '../support/compiled-step-harness.js';
import { noiseSource } from '../support/noise-source.js';

beforeAll(() => {
  expect(initEngine({ quiet: true }).backend).toBe('tensorflow');
});

/** rotation-small.yaml at test size (batch 4, width 0.125, one epoch), no online probe. */
function recipe(overrides: Partial<PretrainRecipe['train']>): PretrainRecipe {
  return shrinkRecipe('rotation-small.yaml', overrides, (r) => {
    r.monitor.onlineProbe.enabled = false;
  });
}

function run(r: PretrainRecipe, options: { maxSteps?: number; resume?: string } = {}) {
  return runPretrain(r, {
    source: noiseSource(16, 40),
    tmpPrefix: 'selfsup-compiled-',
    maxSteps: options.maxSteps ?? 3,
    resume: options.resume,
  });
}

describe('train.compile and train.precision', () => {
  it('chooses the path and says why', () => {
    expect(chooseTrainingPath('off', 'auto', undefined, ['amx_bf16']).reason).toBe(
      'eager step, float32 (recipe.train.compile is off)',
    );
    expect(chooseTrainingPath('auto', 'auto', 'optimizer adam is not compiled yet (sgd is)', ['amx_bf16'])).toEqual({
      compiled: false,
      precision: 'float32',
      reason: 'eager step, float32 (optimizer adam is not compiled yet (sgd is))',
    });
    expect(chooseTrainingPath('auto', 'auto', undefined, ['avx512_bf16'])).toEqual({
      compiled: true,
      precision: 'bfloat16',
      reason: 'compiled graph, bfloat16 (the CPU has avx512_bf16)',
    });
    expect(chooseTrainingPath('on', 'auto', undefined, []).precision).toBe('float32');
    expect(() => chooseTrainingPath('on', 'auto', 'the graph addon is not built', [])).toThrow(
      'recipe.train.compile is on but the training step cannot be compiled: the graph addon is not built',
    );
    expect(() => chooseTrainingPath('off', 'bfloat16', undefined, ['amx_bf16'])).toThrow(
      'recipe.train.precision bfloat16 needs the compiled training step, which this run cannot use (recipe.train.compile is off); use float32 or auto',
    );
    // bfloat16 asked for on a CPU whose TensorFlow cannot run it (no AVX-512): refused before the run, not at its first step.
    expect(() => chooseTrainingPath('on', 'bfloat16', undefined, [], false)).toThrow(
      "recipe.train.precision bfloat16 needs a CPU with AVX-512 (TensorFlow's oneDNN runs bfloat16 only there) and this CPU has none; use float32 or auto",
    );
    expect(chooseTrainingPath('on', 'bfloat16', undefined, [], true).precision).toBe('bfloat16');
    expect(chooseTrainingPath('auto', 'auto', undefined, [], false).precision).toBe('float32');
  });

  it('reads from the CPU flags whether TensorFlow runs bfloat16 (AVX-512) and whether it pays (AVX512-BF16, AMX)', () => {
    expect(cpuRunsBfloat16(new Set(['sse4_2', 'avx2', 'fma']))).toBe(false);
    expect(cpuRunsBfloat16(new Set(['avx2', 'avx512f']))).toBe(true);
    expect(cpuRunsBfloat16(new Set(['amx_bf16']))).toBe(true);
    expect(cpuBfloat16Features(new Set(['avx512f', 'avx512_bf16', 'amx_bf16']))).toEqual(['avx512_bf16', 'amx_bf16']);
    expect(cpuBfloat16Features(new Set(['avx512f']))).toEqual([]);
  });

  it.skipIf(!graphRuntimeStatus().available)(
    'compiled float32 gives the eager losses step after step, with a flat tensor count',
    async () => {
      const eager = await run(recipe({ compile: 'off' }));
      const compiled = await run(recipe({ compile: 'on', precision: 'float32' }));
      expect(eager.trainingStep).toBe('eager step, float32 (recipe.train.compile is off)');
      expect(compiled.trainingStep).toBe('compiled graph, float32 (recipe.train.precision)');
      expect(compiled.losses.length).toBe(3);
      // float32 rounding differs between the graph and eager kernels; it grows a little with each update.
      for (let i = 0; i < 3; i++)
        expect(Math.abs(compiled.losses[i] - eager.losses[i])).toBeLessThan(2e-4 * eager.losses[i]);
      expect(compiled.counts).toEqual([compiled.counts[0], compiled.counts[0], compiled.counts[0]]);
    },
  );

  it.skipIf(!graphRuntimeStatus().available)(
    'a compiled run stopped after 2 steps and resumed gives the uninterrupted losses (checkpoints hold the session weights)',
    async () => {
      const r = recipe({ compile: 'on', precision: 'float32' });
      const { whole, resumed } = await wholeAndResumed((options) => run(r, options), 4, 2);
      expect(resumed.length).toBe(4);
      for (let i = 0; i < 4; i++) expect(Math.abs(resumed[i] - whole.losses[i])).toBeLessThan(1e-5 * whole.losses[i]);
    },
  );

  it('falls back to the eager step with auto and says why', async () => {
    // Rotation compiles only its linear head.
    const mlp = recipe({ compile: 'auto' });
    mlp.task.options = { ...mlp.task.options, head: 'mlp' };
    const result = await run(mlp);
    const status = graphRuntimeStatus();
    expect(result.trainingStep).toBe(
      `eager step, float32 (${status.available ? 'task rotation: only the linear head is compiled' : status.reason})`,
    );
    expect(result.losses.every(Number.isFinite)).toBe(true);
  });

  it.skipIf(!graphRuntimeStatus().available)('compiles Adam and AdamW with auto', async () => {
    for (const name of ['adam', 'adamw'] as const) {
      const adam = recipe({ compile: 'auto' });
      adam.train.optimizer = { ...adam.train.optimizer, name, lr: 0.001 };
      const result = await run(adam, { maxSteps: 1 });
      expect(result.trainingStep.startsWith('compiled graph, ')).toBe(true);
      expect(result.losses.every(Number.isFinite)).toBe(true);
    }
  });
});
