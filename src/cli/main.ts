/**
 * The `selfsup` command line. Argument parsing only: every command calls a
 * library function. Exit codes: 0 ok, 1 failure, 2 usage error.
 */
import { Command, CommanderError } from 'commander';
import { VERSION } from '../version.js';
import { registerBudget } from './commands/budget.js';
import { registerDemo } from './commands/demo.js';
import { registerDoctor } from './commands/doctor.js';
import { registerEmbed } from './commands/embed.js';
import { registerEval } from './commands/eval.js';
import { registerExport } from './commands/export.js';
import { registerFewShot } from './commands/fewshot.js';
import { registerFinetune } from './commands/finetune.js';
import { registerImport } from './commands/import.js';
import { registerInspect } from './commands/inspect.js';
import { registerPretrain } from './commands/pretrain.js';
import { registerScan } from './commands/scan.js';
import { registerSelect, registerSelectStudy } from './commands/select.js';
import { EXIT_USAGE, type Register, reportError } from './common.js';

export type { Register };

/**
 * Each command lives in its own file under ./commands and registers itself here,
 * in the order of a user's journey (the order of `selfsup --help`).
 */
const COMMANDS: Register[] = [
  registerScan,
  registerPretrain,
  registerExport,
  registerImport,
  registerInspect,
  registerFinetune,
  registerEval,
  registerBudget,
  registerFewShot,
  registerEmbed,
  registerSelect,
  registerSelectStudy,
  registerDemo,
  registerDoctor,
];

/** The whole command tree; `setResult` receives the promise of the command that runs. */
export function buildProgram(setResult: (p: Promise<number>) => void = () => {}): Command {
  const program = new Command('selfsup')
    .description('Self-supervised pretraining of ResNet backbones on native TensorFlow')
    .version(VERSION)
    .exitOverride()
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({ writeErr: (s) => process.stderr.write(s) })
    .addHelpText(
      'after',
      `
Every command takes --json (result as JSON on stdout), --quiet (no progress on stderr) and
--backend auto|gpu|cpu|js. Exit codes: 0 ok, 1 failure (the message names the file), 2 usage
(the message names the option or recipe key). Reference: docs/cli.md.

Start here:
  $ selfsup doctor          # is native TensorFlow in use, and how fast is it?
  $ selfsup demo --quick    # the whole journey on the shipped sample, tiny budget
  $ selfsup <command> --help`,
    );
  for (const register of COMMANDS) register(program, setResult);
  for (const cmd of program.commands) cmd.exitOverride();
  return program;
}

/** Runs the CLI on `argv` (without node and script) and resolves with the exit code. */
export async function main(argv: string[]): Promise<number> {
  let pending: Promise<number> | undefined;
  const program = buildProgram((p) => (pending = p));
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof CommanderError) {
      // `--help` and `--version` exit 0; help shown because no command was given, and parse errors, exit 2.
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return 0;
      return err.exitCode === 0 ? 0 : EXIT_USAGE;
    }
    return reportError(err, argv.includes('--json'));
  }
  if (!pending) {
    if (argv.length === 0) {
      program.outputHelp();
      return EXIT_USAGE;
    }
    return 0;
  }
  try {
    return await pending;
  } catch (err) {
    return reportError(err, argv.includes('--json'));
  }
}
