/**
 * Shared CLI plumbing: exit codes, global options, option parsers, JSON output,
 * error printing, progress bars. Every command file uses these so that all
 * commands behave alike:
 *  - exit 0 ok, 1 failure (bad input file, failed run), 2 usage (bad option or recipe key),
 *    3 a run stopped early with a checkpoint (Ctrl-C, SIGTERM, SIGHUP, --max-steps);
 *  - `--json` prints one JSON document on stdout (errors too: `{"error": ..., "exitCode": ...}`);
 *  - errors name the file, key or option and say what was expected;
 *  - progress goes to stderr: a bar on a terminal, plain lines otherwise, nothing with --quiet.
 */
import { existsSync } from 'node:fs';
import { type Command, InvalidArgumentError, Option } from 'commander';
import {
  assertFastBackend,
  BACKEND_PREFERENCES,
  type BackendPreference,
  EngineError,
  type EngineInfo,
  initEngine,
} from '../engine/backend.js';
import { describeValue, InputError, UsageError } from '../util/errors.js';
import { Progress } from '../util/progress.js';

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
/** A run that stopped before its end (Ctrl-C, SIGTERM, SIGHUP, --max-steps) with a checkpoint to resume from. */
export const EXIT_STOPPED = 3;

export interface GlobalOptions {
  json?: boolean;
  quiet?: boolean;
  backend?: string;
  allowSlowBackend?: boolean;
}

/** Options common to every command; call on each subcommand. */
export function withGlobalOptions(cmd: Command): Command {
  return cmd
    .option('--json', 'print the result as JSON on stdout (for scripts)')
    .option('--quiet', 'no progress output on stderr')
    .addOption(
      new Option('--backend <name>', 'TensorFlow backend (default: $SELFSUP_BACKEND or auto)').choices(
        BACKEND_PREFERENCES as readonly string[],
      ),
    )
    .option('--allow-slow-backend', 'allow long runs on pure-JS TensorFlow.js (very slow)');
}

/**
 * A commander argument parser for a number option. A bad value is a usage error
 * that names the option: `error: option '--epochs <n>' argument 'x' is invalid.
 * Expected an integer between 1 and 1000 but received "x"`.
 */
export function numberArg(options: { min?: number; max?: number; integer?: boolean } = {}) {
  const { min = -Infinity, max = Infinity, integer = false } = options;
  return (value: string): number => {
    const n = value.trim() === '' ? Number.NaN : Number(value);
    const ok = Number.isFinite(n) && (!integer || Number.isInteger(n)) && n >= min && n <= max;
    if (!ok) {
      const kind = integer ? 'an integer' : 'a number';
      const range =
        min > -Infinity && max < Infinity
          ? ` between ${min} and ${max}`
          : min > -Infinity
            ? ` >= ${min}`
            : max < Infinity
              ? ` <= ${max}`
              : '';
      throw new InvalidArgumentError(`Expected ${kind}${range} but received "${value}"`);
    }
    return n;
  };
}

/** Activates the TensorFlow backend the options ask for; refuses a slow one for long work. */
export function startEngine(opts: GlobalOptions, longRun = true): EngineInfo {
  const info = initEngine({ backend: opts.backend as BackendPreference | undefined, quiet: opts.json });
  if (longRun) assertFastBackend(opts.allowSlowBackend);
  return info;
}

/** Throws an InputError naming `file` (and the option it came from) when it does not exist. */
export function requireExists(file: string, from: string): string {
  if (!existsSync(file)) throw new InputError(file, `does not exist (given as ${from})`);
  return file;
}

/** A progress reporter on stderr that respects --quiet and --json. */
export function progressFor(opts: GlobalOptions, label: string, total?: number): Progress {
  return new Progress({ label, total, silent: Boolean(opts.quiet || opts.json), plainEverySeconds: 5 });
}

/** Status lines for humans on stderr (hidden by --quiet and --json). */
export function note(opts: GlobalOptions, text: string): void {
  if (!opts.quiet && !opts.json) process.stderr.write(`${text}\n`);
}

/** Prints `value` as JSON (when --json) or as `text`. */
export function output(opts: GlobalOptions, value: unknown, text: string): void {
  if (opts.json) process.stdout.write(`${JSON.stringify(value, jsonReplacer, 2)}\n`);
  else process.stdout.write(`${text}\n`);
}

function jsonReplacer(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return Number(value);
  if (ArrayBuffer.isView(value) && !(value instanceof DataView))
    return Array.from(value as unknown as ArrayLike<number>);
  return value;
}

/** The exit code an error maps to: usage errors 2, everything else 1. */
export function exitCodeOf(err: unknown): number {
  return err instanceof UsageError ? EXIT_USAGE : EXIT_FAILURE;
}

/**
 * Prints an error on stderr (`selfsup: <message>`), and as JSON on stdout when
 * `json` is set, and returns its exit code. Stack traces only with SELFSUP_DEBUG=1.
 */
export function reportError(err: unknown, json = false): number {
  const code = exitCodeOf(err);
  const e = err as Error;
  const message =
    err instanceof UsageError || err instanceof InputError || err instanceof EngineError
      ? err.message
      : (e?.message ?? describeValue(err));
  process.stderr.write(`selfsup: ${message}\n`);
  if (process.env.SELFSUP_DEBUG && e?.stack) process.stderr.write(`${e.stack}\n`);
  if (json) process.stdout.write(`${JSON.stringify({ error: message, exitCode: code })}\n`);
  return code;
}

/**
 * `--overwrite`, shared by every command that writes an output folder (add it with
 * `.addOption(overwriteOption())`). Without it a command writes only into a new or
 * empty --out; see src/util/output-dir.ts.
 */
export function overwriteOption(): Option {
  return new Option(
    '--overwrite',
    'replace an earlier output of this command in --out (only the files selfsup wrote there; other files are kept)',
  );
}

/** `--unlabeled-limit` and `--test-limit`, shared by the commands that finetune (finetune, budget). */
export function withSubsetLimitOptions(cmd: Command): Command {
  return cmd
    .option(
      '--unlabeled-limit <n>',
      'use a seeded sample of at most n unlabeled images',
      numberArg({ integer: true, min: 1 }),
    )
    .option(
      '--test-limit <n>',
      'evaluate on a stratified seeded sample of at most n --test images',
      numberArg({ integer: true, min: 1 }),
    );
}
