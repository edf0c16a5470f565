/**
 * The package as a consumer gets it: `npm pack`, `npm install <tarball>` into an
 * empty project, then examples/quickstart.mjs run there (scan, pretrain, export,
 * finetune, eval, ONNX export through `import ... from 'selfsup'`) on native
 * TensorFlow, and type-checked against the package's own .d.ts files.
 *
 * npm fetches the package's dependencies through its ordinary client (its cache
 * makes repeat runs quick).
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DEMO_DATA, ensureBuilt, ROOT } from '../support/cli.js';

/**
 * What makes the package impossible to install outside this repository, read from
 * package.json: a `file:` dependency (the path exists only here) or an install
 * script whose file `files` leaves out. Empty when it can be installed.
 */
function installBlockers(): string[] {
  const manifest = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  const blockers: string[] = [];
  for (const [name, spec] of Object.entries({ ...manifest.dependencies, ...manifest.optionalDependencies })) {
    if (String(spec).startsWith('file:'))
      blockers.push(`dependency ${name} is "${spec}", a path only the repository has`);
  }
  const files: string[] = manifest.files ?? [];
  for (const hook of ['preinstall', 'install', 'postinstall']) {
    for (const [, script] of (manifest.scripts?.[hook] ?? '').matchAll(/\bnode\s+(\S+)/g)) {
      if (!files.some((f) => script === f || script.startsWith(`${f.replace(/\/$/, '')}/`))) {
        blockers.push(`the ${hook} script runs ${script}, which "files" leaves out of the package`);
      }
    }
  }
  return blockers;
}
const blockers = installBlockers();

const work = mkdtempSync(path.join(os.tmpdir(), 'selfsup-pack-'));
const project = path.join(work, 'consumer');
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Runs a command; on failure the error carries the command, exit code and the end of its output. */
function run(command: string, args: string[], cwd: string, timeoutMinutes: number): string {
  const result = spawnSync(command, args, {
    cwd,
    encoding: 'utf8',
    timeout: timeoutMinutes * 60_000,
    env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '2', npm_config_fund: 'false', npm_config_audit: 'false' },
    maxBuffer: 64 * 1024 * 1024,
  });
  if (result.status !== 0) {
    const tail = `${result.stdout ?? ''}\n${result.stderr ?? ''}`.trim().split('\n').slice(-40).join('\n');
    throw new Error(
      `\`${[command, ...args].join(' ')}\` in ${cwd} failed (${result.error?.message ?? `exit ${result.status}`}):\n${tail}`,
    );
  }
  return result.stdout;
}

describe('the packed package in an empty project', () => {
  it.skipIf(blockers.length > 0)(
    `installs, and runs examples/quickstart.mjs on native TensorFlow with its types${
      blockers.length ? ` (skipped: not installable as a dependency yet: ${blockers.join('; ')})` : ''
    }`,
    async () => {
      await ensureBuilt(); // dist/ is built once for all test files; pack it as it is
      const packed = JSON.parse(
        run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], ROOT, 5),
      );
      const tarball = path.join(work, packed[0].filename as string);
      const files = (packed[0].files as Array<{ path: string }>).map((f) => f.path);
      expect(files).toContain('dist/src/index.d.ts');
      expect(files.filter((f) => /^(test|bench|data)\//.test(f))).toEqual([]);

      mkdirSync(project);
      writeFileSync(
        path.join(project, 'package.json'),
        `${JSON.stringify({ name: 'selfsup-consumer', version: '1.0.0', private: true, type: 'module' }, null, 2)}\n`,
      );
      run('npm', ['install', '--prefer-offline', tarball], project, 20);

      copyFileSync(path.join(ROOT, 'examples', 'quickstart.mjs'), path.join(project, 'quickstart.mjs'));
      const out = path.join(project, 'out');
      const summary = JSON.parse(run(process.execPath, ['quickstart.mjs', DEMO_DATA, out], project, 15));
      expect(summary.backend).toBe('tensorflow');
      expect(summary.scanned).toEqual({ ok: 2000, bad: 2 });
      expect(summary.pretrain).toMatchObject({ status: 'finished', steps: 4 });
      expect(summary.evaluation.images).toBe(1000);
      expect(summary.evaluation.accuracy).toBeGreaterThan(0.1); // above chance for 10 classes
      for (const file of Object.values(summary.exports) as string[]) expect(existsSync(file), file).toBe(true);

      // The example type-checks against the installed package's declarations.
      run(
        process.execPath,
        [
          path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'),
          '--noEmit',
          '--allowJs',
          '--checkJs',
          '--module',
          'nodenext',
          '--moduleResolution',
          'nodenext',
          '--target',
          'es2022',
          '--skipLibCheck',
          '--typeRoots',
          path.join(ROOT, 'node_modules', '@types'),
          '--types',
          'node',
          'quickstart.mjs',
        ],
        project,
        5,
      );
    },
    45 * 60_000,
  );
});
