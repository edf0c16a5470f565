/** `selfsup pretrain`: argument parsing only; the work is `pretrain` in src/train. */
import os from 'node:os';
import path from 'node:path';
import type { Command } from 'commander';
import { getTask } from '../../../pretext-tasks/registry.js';
import { applyRecipeOverrides, loadPretrainRecipe, parseLrOverride } from '../../recipes/pretrain-recipe.js';
import { type PretrainResult, pretrain } from '../../train/loop.js';
import { readResolvedRecipe } from '../../train/run-dir.js';
import { UsageError } from '../../util/errors.js';
import {
  EXIT_OK,
  EXIT_STOPPED,
  type GlobalOptions,
  imagesHelp,
  jobConsole,
  note,
  numberArg,
  output,
  requireExists,
  requireInput,
  startEngine,
  withGlobalOptions,
} from '../common.js';

/** Signals that stop a run the way Ctrl-C does (checkpoint, status "stopped", exit 3). */
const STOP_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

interface PretrainCliOptions extends GlobalOptions {
  data?: string;
  out: string;
  resume?: string;
  epochs?: number;
  lrOverride: Array<[number, number]>;
  seed?: number;
  val?: string;
  runId?: string;
  maxSteps?: number;
  init?: string;
}

/** Human summary of a run. */
export function formatPretrainResult(result: PretrainResult): string {
  const epochs = result.metrics.epochRows();
  const last = epochs.at(-1);
  const lines = [`${result.status === 'finished' ? 'Finished' : 'Stopped'} run ${result.runDir}`];
  if (last) {
    lines.push(`  epochs           ${epochs.length} (last: loss ${last.loss.toFixed(4)})`);
    if (Number.isFinite(last.knnAccuracy)) lines.push(`  kNN accuracy     ${(last.knnAccuracy * 100).toFixed(1)}%`);
    if (Number.isFinite(last.imagesPerSecond))
      lines.push(`  speed            ${last.imagesPerSecond.toFixed(1)} images/s (last epoch)`);
  }
  lines.push(`  metrics          ${path.join(result.runDir, 'metrics.arrow')}`);
  if (result.status === 'finished') {
    lines.push(`  curves           ${path.join(result.runDir, 'curves.png')}`);
    lines.push(`  backbone         ${path.join(result.runDir, 'backbone')}`);
  } else {
    lines.push(`  continue with    selfsup pretrain --resume ${result.runDir}`);
  }
  return lines.join('\n');
}

export function registerPretrain(program: Command, setResult: (p: Promise<number>) => void): void {
  withGlobalOptions(
    program
      .command('pretrain')
      .description('pretrain a ResNet backbone on unlabeled images with a pretext task, as a recipe says')
      .argument('[recipe]', 'recipe .yaml (see docs/recipes.md); optional with --resume (the run keeps its own)')
      .option('--data <path>', imagesHelp('unlabeled images'))
      .option('--out <dir>', 'parent folder of runs', 'runs')
      .option(
        '--resume <run>',
        'continue a run folder from its last checkpoint (same schedule, data order, randomness)',
      )
      .option('--epochs <n>', 'override train.epochs (also on resume)', numberArg({ min: 1, integer: true }))
      .option(
        '--lr-override <epoch=lr>',
        'learning rate for a whole 0-based epoch, e.g. 3=0.01 (repeatable; also on resume)',
        (value: string, previous: Array<[number, number]>) => [...previous, parseLrOverride(value)],
        [] as Array<[number, number]>,
      )
      .option('--seed <n>', 'override the recipe seed', numberArg({ min: 0, integer: true }))
      .option('--val <path>', imagesHelp('labelled validation images for the kNN monitor'))
      .option(
        '--init <weights>',
        'continued pretraining: start the backbone from a selfsup backbone/run, a .safetensors file or a PyTorch ' +
          'checkpoint (file.pth#key picks one of several); sets recipe init.weights',
      )
      .option('--run-id <name>', 'run folder name under --out (default: <recipe name>-<timestamp>)')
      .option(
        '--max-steps <n>',
        'stop after n steps with a checkpoint (exit 3; resume later)',
        numberArg({ min: 1, integer: true }),
      )
      .addHelpText(
        'after',
        `
A run folder holds recipe.resolved.yaml, run.json, status.json, checkpoints/ (atomic;
checkpoints/last names the newest), metrics.arrow, curves.png and backbone/.
Ctrl-C, SIGTERM and SIGHUP finish the current step, write a checkpoint and stop (status.json
"stopped", exit 3), as --max-steps does; --resume continues, and embed/export/finetune use the
latest checkpoint's backbone. A run folder is locked (run.lock) while a process writes it.
Exit codes: 0 finished, 1 failure (diverged, unreadable data, run in use), 2 usage, 3 stopped.

Examples:
  $ selfsup pretrain recipes/rotation-small.yaml --data data/fashion-mnist-demo/unlabeled --out runs
  $ selfsup pretrain recipes/simclr-small.yaml --data train-images-idx3-ubyte.gz --val data/fashion-mnist-demo/test --epochs 5
  $ selfsup pretrain recipes/simclr-resnet18.yaml --data ./photos --lr-override 0=0.05 --seed 7
  $ selfsup pretrain --resume runs/simclr-small-20260101-120000Z --lr-override 4=0.01
  # continue a rotation-pretrained backbone with SimCLR (recipe init: sets a lower backbone rate at first)
  $ selfsup pretrain recipes/simclr-small.yaml --data ./dump --init runs/rotation-small-20260101-120000Z`,
      ),
  ).action((recipeFile: string | undefined, opts: PretrainCliOptions) => {
    setResult(
      (async () => {
        if (!recipeFile && !opts.resume) throw new UsageError('pretrain needs a recipe .yaml (or --resume <run>)');
        if (!opts.resume && !opts.data) throw new UsageError('pretrain needs --data <folder|manifest.arrow|file.idx>');
        if (opts.data) requireInput(opts.data, '--data');
        if (opts.val) requireInput(opts.val, '--val');
        if (opts.resume) requireExists(opts.resume, '--resume');
        if (recipeFile) requireExists(recipeFile, '<recipe>');
        if (opts.init && opts.resume) {
          throw new UsageError('--init starts a new run from existing weights; a resumed run keeps its own');
        }
        startEngine(opts);
        let recipe = recipeFile ? loadPretrainRecipe(recipeFile, getTask) : readResolvedRecipe(opts.resume!);
        if (opts.resume && recipeFile) recipe.name = readResolvedRecipe(opts.resume).name;
        recipe = applyRecipeOverrides(recipe, {
          epochs: opts.epochs,
          seed: opts.seed,
          lrOverrides: Object.fromEntries(opts.lrOverride),
          initWeights: opts.init,
        });
        // Ctrl-C, SIGTERM, SIGHUP: finish the step, write a checkpoint, stop (resume later);
        // a second signal quits at once (128 + its number, as a shell reports it).
        const interrupt = new AbortController();
        const onSignal = (signal: NodeJS.Signals) => {
          if (interrupt.signal.aborted) process.exit(128 + (os.constants.signals[signal] ?? 2));
          const name = signal === 'SIGINT' ? 'Ctrl-C' : signal;
          process.stderr.write(
            `\nselfsup: ${name}: stopping after this step and writing a checkpoint (${name} again to quit now)\n`,
          );
          interrupt.abort();
        };
        for (const signal of STOP_SIGNALS) process.on(signal, onSignal);
        const result = await pretrain(recipe, {
          signal: interrupt.signal,
          dataPath: opts.data,
          validationPath: opts.val,
          outDir: opts.out,
          runId: opts.runId,
          resume: opts.resume,
          maxSteps: opts.maxSteps,
          progress: !opts.quiet && !opts.json,
          onEvent: (event) => {
            if (event.type === 'start') {
              note(
                opts,
                `${event.resumedFrom ? 'Resuming' : 'Starting'} ${event.runDir}: ${event.epochs} epochs of ${event.stepsPerEpoch} steps${event.resumedFrom ? ` from ${event.resumedFrom}` : ''}`,
              );
              note(opts, `training step: ${event.trainingStep}`);
            } else if (event.type === 'warning') {
              jobConsole(opts).warn(event.message);
            } else if (event.type === 'epoch') {
              const r = event.row;
              const knn = Number.isFinite(r.knnAccuracy) ? `, kNN ${(r.knnAccuracy * 100).toFixed(1)}%` : '';
              note(
                opts,
                `epoch ${r.epoch}: loss ${r.loss.toFixed(4)}${knn}, ${r.imagesPerSecond.toFixed(1)} images/s, ${r.seconds.toFixed(1)} s`,
              );
            }
          },
        }).finally(() => {
          for (const signal of STOP_SIGNALS) process.off(signal, onSignal);
        });
        output(
          opts,
          {
            runDir: result.runDir,
            status: result.status,
            epochs: result.metrics.epochRows(),
          },
          formatPretrainResult(result),
        );
        return result.status === 'stopped' ? EXIT_STOPPED : EXIT_OK;
      })(),
    );
  });
}
