/** `selfsup fewshot`: argument parsing only; the work is `runFewShot` in src/demo. */
import type { Command } from 'commander';
import { getTask } from '../../../pretext-tasks/registry.js';
import { type FewShotResult, runFewShot } from '../../demo/fewshot.js';
import { loadFinetuneRecipe } from '../../recipes/finetune-recipe.js';
import { loadPretrainRecipe } from '../../recipes/pretrain-recipe.js';
import { type GlobalOptions, imagesHelp, numberArg, runJob, withGlobalOptions } from '../common.js';
import { formatFinetuneSummary } from './finetune.js';

interface FewShotCliOptions extends GlobalOptions {
  data: string;
  labels: string;
  test?: string;
  out: string;
  unlabeledLimit?: number;
  testLimit?: number;
  seed?: number;
}

export function formatFewShotResult(r: FewShotResult): string {
  return [
    `Pretrained ${r.pretrainRun}${r.pretrainReused ? ' (reused)' : ''} in ${r.minutes.pretrain.toFixed(1)} min, finetuned in ${r.minutes.finetune.toFixed(1)} min`,
    formatFinetuneSummary(r.finetune),
  ].join('\n');
}

export function registerFewShot(program: Command, setResult: (p: Promise<number>) => void): void {
  const command = program
    .command('fewshot')
    .description(
      'a dump and a few labels in one command: pretrain on the dump, then finetune on the labels with the dump as unlabeled images (FixMatch / self-training)',
    )
    .argument('<pretrain-recipe>', 'the pretraining recipe (recipes/rotation-small.yaml, ...)')
    .argument('<finetune-recipe>', 'the finetuning recipe (recipes/finetune-semi-supervised.yaml, ...)')
    .requiredOption('--data <path>', imagesHelp('the unlabeled dump'))
    .requiredOption('--labels <path>', imagesHelp('labeled images'))
    .requiredOption('--out <dir>', 'output folder: <out>/pretrain (the run), <out>/model (the classifier)')
    .option(
      '--test <path>',
      imagesHelp('labeled test images for the report (default: the recipe eval.holdout of --labels)'),
    )
    .option('--seed <n>', "override both recipes' seed", numberArg({ min: 0, integer: true }))
    .addHelpText(
      'after',
      `
The same command again continues where it stopped: a finished pretraining is reused, an
unfinished one resumes from its last checkpoint, an interrupted finetune resumes too.
<out>/fewshot.json records the recipes, inputs, minutes per stage and the headline numbers.
A finetune of 20 or more epochs prints a line every tenth of them (loss; FixMatch's mask rate, and
its pseudo-labels' accuracy when the dump has labels), unless --quiet.
Exit codes: 0 done, 1 failure, 2 usage.

Examples:
  $ selfsup fewshot recipes/rotation-small-quick.yaml recipes/finetune-fixmatch-long.yaml \\
      --data ./dump --labels ./labeled --test ./test --out runs/fewshot   # the measured few-labels path
  $ selfsup fewshot recipes/rotation-small.yaml recipes/finetune-semi-supervised.yaml \\
      --data ./dump --labels ./labeled --out runs/fewshot-st             # one self-training round`,
    );
  withGlobalOptions(command, { subsetLimits: true }).action(
    (pretrainFile: string, finetuneFile: string, opts: FewShotCliOptions) => {
      runJob(setResult, opts, {
        inputs: {
          '<pretrain-recipe>': pretrainFile,
          '<finetune-recipe>': finetuneFile,
          '--data': opts.data,
          '--labels': opts.labels,
          '--test': opts.test,
        },
        prepare: () => {
          const pretrainRecipe = loadPretrainRecipe(pretrainFile, getTask);
          const finetuneRecipe = loadFinetuneRecipe(finetuneFile);
          if (opts.seed !== undefined) {
            pretrainRecipe.seed = opts.seed;
            finetuneRecipe.seed = opts.seed;
          }
          return { pretrainRecipe, finetuneRecipe };
        },
        work: ({ prepared, io }) =>
          runFewShot({
            ...prepared,
            pretrainRecipeFile: pretrainFile,
            finetuneRecipeFile: finetuneFile,
            data: opts.data,
            labels: opts.labels,
            test: opts.test,
            unlabeledLimit: opts.unlabeledLimit,
            testLimit: opts.testLimit,
            out: opts.out,
            progress: io.showProgress,
            log: io.note,
          }),
        format: formatFewShotResult,
      });
    },
  );
}
