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
import { UNCERTAINTY_MEASURES } from '../select/scores.js';
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

/** The options several commands share; a command names those it takes when it calls `withGlobalOptions`. */
export interface SharedOptions {
  /** `--out <dir>` (required: a new or empty folder) and `--overwrite`, which may replace `outputFolder` (`an earlier study`). */
  outputFolder?: string;
  /** `--input-size` and `--batch-size`, for the commands that run a backbone over images (embed, select, select-study). */
  forwardPass?: { batchSize: number; inputSize: string };
  /** `--unlabeled-limit` and `--test-limit`, for the commands that finetune (finetune, budget). */
  subsetLimits?: boolean;
}

/**
 * Options common to every command, after the shared ones the command takes
 * (`shared`); call on each subcommand once its own options are declared.
 */
export function withGlobalOptions(cmd: Command, shared: SharedOptions = {}): Command {
  if (shared.outputFolder !== undefined) {
    cmd
      .requiredOption('--out <dir>', `output folder: new or empty (or ${shared.outputFolder}, with --overwrite)`)
      .addOption(overwriteOption());
  }
  if (shared.forwardPass) {
    cmd
      .option(
        '--input-size <px>',
        `input side in px (default: ${shared.forwardPass.inputSize})`,
        numberArg({ min: 8, max: 1024, integer: true }),
      )
      .option(
        '--batch-size <n>',
        'images per forward pass',
        numberArg({ min: 1, max: 4096, integer: true }),
        shared.forwardPass.batchSize,
      );
  }
  if (shared.subsetLimits) {
    cmd
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

/**
 * What every option that takes images accepts: the sources `openImageSource`
 * (src/data/open.ts) opens. Each such option's help is `imagesHelp(what)`, so
 * every command lists the same sources.
 */
export const IMAGE_SOURCES =
  'a folder of images or of class subfolders, a folder of IDX files, a scan manifest.arrow, a .csv/.arrow label ' +
  'table (path,label), an IDX images file, or images,labels IDX files';

/** The help of an option that takes images: what they are for, then every source it accepts. */
export function imagesHelp(what: string): string {
  return `${what}: ${IMAGE_SOURCES}`;
}

/** What every option that takes a backbone accepts: the locations `loadBackbone` (src/export) opens. */
export const BACKBONE_SOURCES =
  'a run folder, a backbone folder (manifest.json + backbone.safetensors), a torchvision .safetensors file, ' +
  'a PyTorch .pth/.ckpt (file.pth#key picks one of several) or a tfjs model.json';

/** The help of an option that takes a backbone: what it is for, then every location it accepts. */
export function backboneHelp(what: string): string {
  return `${what}: ${BACKBONE_SOURCES}`;
}

/** The `<model>` argument of the commands that run a model over images (embed, select, select-study). */
export function modelArgument(what: string): { name: string; help: string } {
  return { name: '<model>', help: backboneHelp(what) };
}

/**
 * Throws an InputError naming the file (and the option it came from) when an
 * input does not exist; an `images,labels` IDX pair is checked file by file, a
 * `file.pth#key` checkpoint by its file.
 */
export function requireInput(spec: string, from: string): string {
  const hash = spec.lastIndexOf('#');
  if (existsSync(spec) || (hash > 0 && existsSync(spec.slice(0, hash)))) return spec;
  for (const file of spec.split(',')) requireExists(file, from);
  return spec;
}

/** How a job talks to the person at the terminal: on stderr, as --quiet and --json allow. */
export interface JobConsole {
  /** A status line (hidden by --quiet and --json). */
  note(text: string): void;
  /** A warning, `selfsup: warning: ...` (always shown). */
  warn(message: string): void;
  /** Progress of a named stage (`embed`, `predict`): one bar per stage, finished when done. */
  progress(stage: string, done: number, total: number): void;
  /** Whether the library's own progress output should show (not with --quiet or --json). */
  showProgress: boolean;
}

/** The stage and progress callbacks of the library calls that report stages (selectImages, runSelectionStudy). */
export interface StageCallbacks {
  onStage: (text: string) => void;
  onProgress: (stage: string, done: number, total: number) => void;
}

/** Stage and progress callbacks that show on `io`: stages as status lines, progress as one bar per stage. */
export function stageCallbacks(io: JobConsole): StageCallbacks {
  return { onStage: io.note, onProgress: io.progress };
}

/** The console of a command run with `opts`. */
export function jobConsole(opts: GlobalOptions): JobConsole {
  const bars = new Map<string, Progress>();
  return {
    note: (text) => note(opts, text),
    warn: (message) => process.stderr.write(`selfsup: warning: ${message}\n`),
    progress(stage, done, total) {
      let bar = bars.get(stage);
      if (!bar) {
        bar = progressFor(opts, stage, total);
        bars.set(stage, bar);
      }
      bar.update(done);
      if (done === total) bar.finish();
    },
    showProgress: !opts.quiet && !opts.json,
  };
}

/** What a command's library call is given: what `prepare` returned, the console, and the command's own options. */
export interface JobRun<Prepared, Own> {
  prepared: Prepared;
  io: JobConsole;
  /** The parsed options without the global ones (--json, --quiet, --backend, ...). */
  options: Own;
}

/** A command's work: the files it reads, the library call, and how its result reads for a human. */
export interface Job<Result, Prepared, Options extends GlobalOptions> {
  /** Inputs by the option or argument that names them (`'--data': opts.data`); each must exist. */
  inputs?: Record<string, string | undefined>;
  /** Checks that need no engine (lists, the recipe), after the inputs are found and before the engine starts. */
  prepare?: () => Prepared;
  /** The library call; it runs after the engine has started. */
  work: (run: JobRun<Prepared, Omit<Options, keyof GlobalOptions>>) => Promise<Result>;
  /** The result for a human (the JSON output is the result itself). */
  format: (result: Result) => string;
}

/**
 * The end of a command's action: checks that the inputs exist, runs `prepare`,
 * starts the TensorFlow engine (refusing a slow backend for long work), runs the
 * library call and prints its result as JSON (--json) or text; exit 0. Every
 * error goes to the command's promise, so it is printed and mapped to its exit code.
 */
export function runJob<Result, Options extends GlobalOptions, Prepared = undefined>(
  setResult: (p: Promise<number>) => void,
  opts: Options,
  job: Job<Result, Prepared, Options>,
): void {
  setResult(
    (async () => {
      for (const [from, file] of Object.entries(job.inputs ?? {})) if (file !== undefined) requireInput(file, from);
      const prepared = job.prepare?.() as Prepared;
      startEngine(opts);
      const result = await job.work({ prepared, io: jobConsole(opts), options: commandOptions(opts) });
      output(opts, result, job.format(result));
      return EXIT_OK;
    })(),
  );
}

/** A command's own options, without the global ones: what it passes on to its library call. */
export function commandOptions<Options extends GlobalOptions>(opts: Options): Omit<Options, keyof GlobalOptions> {
  const { json: _json, quiet: _quiet, backend: _backend, allowSlowBackend: _allowSlowBackend, ...own } = opts;
  return own;
}

/** One option of a command, as data: flags, help, and what commander does with its value. */
export interface OptionRow {
  flags: string;
  help: string;
  /** Parses (and checks) the value: `numberArg(...)`, or none to keep the text. */
  parse?: (value: string) => unknown;
  default?: unknown;
  /** The values it accepts (listed in --help). */
  choices?: readonly string[];
  required?: boolean;
}

/** The commander option a row declares. */
export function optionOf(row: OptionRow): Option {
  const option = new Option(row.flags, row.help);
  if (row.choices) option.choices([...row.choices]);
  if (row.parse) option.argParser(row.parse);
  if (row.default !== undefined) option.default(row.default);
  if (row.required) option.makeOptionMandatory();
  return option;
}

/** A command that runs one job, declared as data: what `registerJobCommand` builds. */
export interface JobCommand<Result, Prepared, Options extends GlobalOptions> {
  name: string;
  description: string;
  /** The one positional argument (`<model>`, `[recipe]`) and its help. */
  argument: { name: string; help: string };
  /** The command's own options, in --help order (the shared and global ones follow). */
  options: readonly OptionRow[];
  shared: SharedOptions;
  /** Printed after the options in --help: what the command writes, examples. */
  helpAfter: string;
  /** The job the action runs, given the argument and the parsed options. */
  job: (argument: string | undefined, opts: Options) => Job<Result, Prepared, Options>;
}

/** What declares a command on the program; `setResult` receives the promise of the command's run. */
export type Register = (program: Command, setResult: (p: Promise<number>) => void) => void;

/** The `Register` of a job command: argument, options, shared and global options, and `runJob` as its action. */
export function jobCommand<Result, Prepared, Options extends GlobalOptions>(
  spec: JobCommand<Result, Prepared, Options>,
): Register {
  return (program, setResult) => {
    const command = program
      .command(spec.name)
      .description(spec.description)
      .argument(spec.argument.name, spec.argument.help);
    for (const row of spec.options) command.addOption(optionOf(row));
    command.addHelpText('after', spec.helpAfter);
    withGlobalOptions(command, spec.shared).action((argument: string | undefined, opts: Options) =>
      runJob(setResult, opts, spec.job(argument, opts)),
    );
  };
}

/** Parses "10,100" into [10, 100]; names the option on error. */
export function parseIntegerList(value: string, option: string, min = 0): number[] {
  const parts = value.split(',').map((s) => s.trim());
  const out = parts.map(Number);
  if (parts.some((p) => p === '') || out.some((n) => !Number.isInteger(n) || n < min)) {
    throw new UsageError(`Expected a comma-separated list of integers >= ${min} for ${option} but received "${value}"`);
  }
  return out;
}

/** `--measure`: the uncertainty measure of the strategies that use a classifier's probabilities (select, select-study). */
export function measureOption(help: string): OptionRow {
  return { flags: '--measure <name>', help, choices: UNCERTAINTY_MEASURES, default: 'margin' };
}
