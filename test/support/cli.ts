/**
 * Helpers for CLI tests: build dist/ once (shared across test processes with a
 * lock and a stamp of the newest source mtime), and run `node bin/selfsup.js`
 * as a subprocess.
 */
import { execFile, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const DEMO_DATA = path.join(ROOT, 'data/fashion-mnist-demo');
const STAMP = path.join(ROOT, 'dist/.cli-test-build-stamp');

function newestSourceMtime(): number {
  let newest = 0;
  const walk = (dir: string) => {
    if (!existsSync(dir)) return;
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (/\.(ts|json)$/.test(entry.name)) newest = Math.max(newest, statSync(full).mtimeMs);
    }
  };
  walk(path.join(ROOT, 'src'));
  walk(path.join(ROOT, 'pretext-tasks'));
  return newest;
}

function upToDate(): boolean {
  if (!existsSync(STAMP) || !existsSync(path.join(ROOT, 'dist/src/cli/main.js'))) return false;
  return readFileSync(STAMP, 'utf8') === String(newestSourceMtime());
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Compiles the package with tsc unless dist/ is newer than every source file.
 * Test files in other worker processes wait for the one that builds.
 */
export async function ensureBuilt(): Promise<void> {
  if (upToDate()) return;
  const lock = path.join(
    os.tmpdir(),
    `selfsup-build-${createHash('sha1').update(ROOT).digest('hex').slice(0, 12)}.lock`,
  );
  for (let waited = 0; ; waited += 250) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      if (upToDate()) return;
      // A lock older than 3 minutes belongs to a dead process.
      if (existsSync(lock) && Date.now() - statSync(lock).mtimeMs > 180_000)
        rmSync(lock, { recursive: true, force: true });
      if (waited > 180_000) throw new Error(`timed out waiting for the build lock ${lock}`);
      await sleep(250);
    }
  }
  try {
    if (upToDate()) return;
    const stamp = String(newestSourceMtime());
    const r = spawnSync(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    // tsc still emits JavaScript when it reports type errors (status 2); only a missing CLI is fatal.
    if (!existsSync(path.join(ROOT, 'dist/src/cli/main.js'))) {
      throw new Error(`tsc failed (status ${r.status}):\n${r.stdout}${r.stderr}`);
    }
    if (r.status !== 0)
      process.stderr.write(`warning: tsc reported errors (status ${r.status}):\n${r.stdout.slice(0, 2000)}`);
    writeFileSync(STAMP, stamp);
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `node bin/selfsup.js ...args` and resolves with its exit code and output. */
export function runCli(args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}) {
  return new Promise<CliResult>((resolve, reject) => {
    execFile(
      process.execPath,
      [path.join(ROOT, 'bin/selfsup.js'), ...args],
      {
        cwd: options.cwd ?? ROOT,
        env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '2', SELFSUP_DEBUG: '', ...options.env },
        timeout: options.timeoutMs ?? 120_000,
        maxBuffer: 64 * 1024 * 1024,
      },
      (error, stdout, stderr) => {
        if (error && typeof error.code !== 'number') {
          reject(new Error(`selfsup ${args.join(' ')} did not exit normally (${error.message})\n${stderr}`));
          return;
        }
        resolve({ code: typeof error?.code === 'number' ? error.code : 0, stdout, stderr });
      },
    );
  });
}
