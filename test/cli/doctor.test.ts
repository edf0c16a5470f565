import { beforeAll, describe, expect, it } from 'vitest';
import { GPU_PACKAGE, gpuSystemProblem, nativeInstallProblem, nativePackageDir } from '../../src/engine/native.js';
import { ensureBuilt, runCli } from '../support/cli.js';

describe('selfsup doctor (subprocess)', () => {
  beforeAll(ensureBuilt, 180_000);

  it('reports native TensorFlow as JSON', async () => {
    const r = await runCli(['doctor', '--json', '--no-speed']);
    expect(r.code, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.engine.backend).toBe('tensorflow');
    expect(report.engine.runtime.package).toBe(report.engine.provider);
    expect(typeof report.engine.runtime.cudaBuild).toBe('boolean');
    expect(Array.isArray(report.gpu.listed)).toBe(true);
    if (!report.engine.gpu) expect(report.gpu.problem).toBeTruthy();
  });

  const noGpu = gpuSystemProblem();
  it.runIf(noGpu !== undefined)('--backend gpu on a machine without a GPU fails with exit 1 and one line', async () => {
    const r = await runCli(['doctor', '--backend', 'gpu', '--no-speed']);
    expect(r.code).toBe(1);
    const expected = nativePackageDir(GPU_PACKAGE)
      ? `selfsup: backend "gpu" was asked for but no GPU works: ${noGpu}`
      : `selfsup: backend "gpu" was asked for but ${GPU_PACKAGE} failed to load: ${nativeInstallProblem(GPU_PACKAGE)}`;
    expect(r.stderr.trim()).toBe(expected);
  });

  it('rejects a bad --seconds value with exit code 2, naming the option', async () => {
    const r = await runCli(['doctor', '--seconds', 'soon']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      `error: option '--seconds <n>' argument 'soon' is invalid. Expected a number between 0.1 and 60 but received "soon"`,
    );
  });

  it('rejects an unknown backend with exit code 2, listing the choices', async () => {
    const r = await runCli(['doctor', '--backend', 'tpu']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      `error: option '--backend <name>' argument 'tpu' is invalid. Allowed choices are auto, gpu, cpu, js.`,
    );
  });

  it('treats an unknown command as a usage error and prints help for no command', async () => {
    const unknown = await runCli(['pretrian']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain(`error: unknown command 'pretrian'`);
    const none = await runCli([]);
    expect(none.code).toBe(2);
    expect(none.stdout + none.stderr).toContain('Usage: selfsup');
  });
});
