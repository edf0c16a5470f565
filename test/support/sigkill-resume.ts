/**
 * The kill-and-resume scaffolding of the resume tests (test/train/resume.test.ts,
 * resume-method.test.ts, test/finetune/resume.test.ts): a training run in a child
 * process (a fixture run through test/train/fixtures/run-ts.mjs) that prints
 * `step <globalStep> <loss>` per step and is killed with SIGKILL after a given
 * step; the checkpoint folder it leaves; the step losses of a metrics log.
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'vitest';
import type { MetricsLog } from '../../src/train/metrics.js';

export interface KilledRun {
  /** The signal (or exit code) the child ended with. */
  exit: NodeJS.Signals | number | null;
  /** What the child wrote to stderr. */
  stderr: string;
  /** [globalStep, loss] of every `step` line the child printed before it ended. */
  printed: Array<[number, number]>;
}

/**
 * Runs `fixture` (a .ts file exporting main(args)) with `args` in a child process, and kills it with
 * SIGKILL as soon as it prints step `killAfterStep`. `env` is added to this process's environment.
 */
export function runAndKill(
  fixture: string,
  args: string[],
  killAfterStep: number,
  env?: Record<string, string>,
): Promise<KilledRun> {
  const child = spawn(process.execPath, ['test/train/fixtures/run-ts.mjs', fixture, ...args], {
    ...(env ? { env: { ...process.env, ...env } } : {}),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const printed: Array<[number, number]> = [];
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  const exit = new Promise<NodeJS.Signals | number | null>((resolve) =>
    child.on('exit', (code, signal) => resolve(signal ?? code)),
  );
  let buffered = '';
  child.stdout.on('data', (chunk) => {
    buffered += chunk;
    const lines = buffered.split('\n');
    buffered = lines.pop() ?? '';
    for (const line of lines) {
      const m = /^step (\d+) (\S+)$/.exec(line);
      if (!m) continue;
      printed.push([Number(m[1]), Number(m[2])]);
      if (Number(m[1]) === killAfterStep) child.kill('SIGKILL');
    }
  });
  return exit.then((how) => ({ exit: how, stderr, printed }));
}

/** The checkpoint `checkpoints/last` names (the pointer file's text). */
export const lastCheckpoint = (runDir: string) => readFileSync(path.join(runDir, 'checkpoints', 'last'), 'utf8').trim();

/** Expects every ckpt-* folder under `checkpoints` to be complete: never a half-written checkpoint. */
export function expectCompleteCheckpoints(checkpoints: string) {
  for (const name of readdirSync(checkpoints).filter((n) => n.startsWith('ckpt-'))) {
    for (const f of ['tensors.bin', 'tensors.json', 'state.json', 'metrics.arrow']) {
      expect(existsSync(path.join(checkpoints, name, f)), `${name}/${f}`).toBe(true);
    }
  }
}

/** [globalStep, loss] of each step row. */
export function stepLosses(log: MetricsLog): Array<[number, number]> {
  return log.stepRows().map((r) => [r.globalStep, r.loss]);
}
