/** Shared CLI plumbing: exit codes, JSON output, error printing. */
import type { Command } from 'commander';
import { EngineError } from '../engine/backend.js';
import { InputError, UsageError } from '../util/errors.js';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

export interface GlobalOptions {
  json?: boolean;
  backend?: string;
  allowSlowBackend?: boolean;
}

/** Options common to every command; call on each subcommand. */
export function withGlobalOptions(cmd: Command): Command {
  return cmd
    .option('--json', 'print the result as JSON on stdout (for scripts)')
    .option('--backend <name>', 'auto | gpu | cpu | js (default: $SELFSUP_BACKEND or auto)')
    .option('--allow-slow-backend', 'allow long runs on pure-JS TensorFlow.js (very slow)');
}

/** Prints `value` as JSON (when --json) or as `text`. */
export function output(opts: GlobalOptions, value: unknown, text: string): void {
  if (opts.json) process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  else process.stdout.write(`${text}\n`);
}

/** Maps an error to an exit code and prints it on stderr. */
export function reportError(err: unknown): number {
  if (err instanceof UsageError) {
    process.stderr.write(`selfsup: ${err.message}\n`);
    return EXIT_USAGE;
  }
  if (err instanceof InputError || err instanceof EngineError) {
    process.stderr.write(`selfsup: ${err.message}\n`);
    return EXIT_FAILURE;
  }
  const e = err as Error;
  process.stderr.write(`selfsup: ${e?.message ?? String(err)}\n`);
  if (process.env.SELFSUP_DEBUG) process.stderr.write(`${e?.stack ?? ''}\n`);
  return EXIT_FAILURE;
}
