/** `selfsup budget`: argument parsing only; the work is `runBudget` in src/finetune. */
import type { Command } from 'commander';
import { BUDGET_ARMS, type BudgetResult, budgetMarkdown, checkBudgetArm, runBudget } from '../../finetune/budget.js';
import {
  DEFAULT_FINETUNE_RECIPE,
  defaultFinetuneRecipeFile,
  loadFinetuneRecipe,
} from '../../recipes/finetune-recipe.js';
import { UsageError } from '../../util/errors.js';
import {
  type GlobalOptions,
  note,
  numberArg,
  output,
  overwriteOption,
  requireExists,
  startEngine,
  withGlobalOptions,
  withSubsetLimitOptions,
} from '../common.js';

interface BudgetCliOptions extends GlobalOptions {
  backbone: string;
  labels: string;
  test?: string;
  unlabeled?: string;
  unlabeledLimit?: number;
  testLimit?: number;
  perClass: string;
  seeds: string;
  arms: string;
  valPerClass?: number;
  out: string;
  overwrite?: boolean;
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

export function registerBudget(program: Command, setResult: (p: Promise<number>) => void): void {
  withGlobalOptions(
    withSubsetLimitOptions(
      program
        .command('budget')
        .description(
          'label-budget study: finetune with N labels per class over several seeds, from scratch vs pretrained (vs + FixMatch)',
        )
        .argument(
          '[recipe]',
          `the finetuning recipe every run uses (recipes/finetune-*.yaml; default: recipes/${DEFAULT_FINETUNE_RECIPE})`,
        )
        .requiredOption(
          '--backbone <path>',
          'the pretrained backbone: a run folder, an export folder, a .safetensors file or a PyTorch .pth/.ckpt (file.pth#key)',
        )
        .requiredOption(
          '--labels <path>',
          'the labeled pool the N per class are drawn from (class folders, table, IDX)',
        )
        .requiredOption('--out <dir>', 'output folder: new or empty (or an earlier budget study, with --overwrite)')
        .addOption(overwriteOption())
        .option('--test <path>', 'labeled test images (default: a stratified holdout of --labels, recipe eval.holdout)')
        .option('--per-class <list>', 'labels per class, comma-separated', '10,100')
        .option('--seeds <list>', 'seeds, comma-separated', '0,1,2')
        .option(
          '--arms <list>',
          `what to compare, comma-separated: ${BUDGET_ARMS.join(', ')}, init:<weights> (finetune like pretrained, from ` +
            'other weights: a run, a backbone folder, .safetensors, a PyTorch .pth/.ckpt)',
          'scratch,pretrained',
        )
        .option(
          '--unlabeled <path>',
          'unlabeled images for the +fixmatch and +self-training arms (default: the labeled pool, labels hidden)',
        )
        .option(
          '--val-per-class <n>',
          'hold out n images per class of --labels as a validation split (in no label subset, not unlabeled); every ' +
            'run reports its accuracy on it; without --test it is the only evaluation. Choose recipes on it.',
          numberArg({ integer: true, min: 1 }),
        )
        .addHelpText(
          'after',
          `
Every arm runs the same recipe (default: recipes/${DEFAULT_FINETUNE_RECIPE}); the scratch arm starts from a
random initialisation, trains every layer at the head's learning rate and skips the recipe's linear probe
(probe:). The +fixmatch arms turn the recipe's fixmatch: on; the +self-training arms run its selfTraining:
rounds (at least one; with +fixmatch, round 0 is the FixMatch finetune); the other arms run neither.
Outputs in --out: runs.arrow (one row per run), summary.arrow and budget.md (accuracy mean ± std per arm
and N, and the cost: wall minutes per run and in total), budget.png (bars with error bars), budget.json,
subsets.json (the source indices of every label subset and of the validation split).

Examples:
  $ selfsup budget --backbone runs/simclr --labels /usr/share/datasets/fashion-mnist \\
      --test /usr/share/datasets/fashion-mnist --per-class 10,100 --seeds 0,1,2 --out studies/fmnist-budget
  $ selfsup budget recipes/finetune-budget-lpft.yaml --backbone runs/simclr --labels /usr/share/datasets/fashion-mnist \\
      --val-per-class 200 --per-class 10 --seeds 0,1,2 --out studies/choose-lpft
  $ selfsup budget recipes/finetune-fixmatch-budget.yaml --backbone runs/simclr --labels data/fashion-mnist-demo/labeled \\
      --arms pretrained,pretrained+fixmatch --unlabeled data/fashion-mnist-demo/unlabeled --per-class 10 --out studies/fixmatch`,
        ),
    ),
  ).action((recipeArg: string | undefined, opts: BudgetCliOptions) => {
    setResult(
      (async () => {
        const recipeFile = recipeArg ?? defaultFinetuneRecipeFile();
        requireExists(recipeFile, '[recipe]');
        requireExists(opts.backbone, '--backbone');
        const perClass = parseIntegerList(opts.perClass, '--per-class', 1);
        const seeds = parseIntegerList(opts.seeds, '--seeds', 0);
        const arms = opts.arms.split(',').map((s) => checkBudgetArm(s.trim()));
        const recipe = loadFinetuneRecipe(recipeFile);
        startEngine(opts);
        const result: BudgetResult = await runBudget({
          recipe,
          recipeFile,
          backbone: opts.backbone,
          labels: opts.labels,
          test: opts.test,
          unlabeled: opts.unlabeled,
          unlabeledLimit: opts.unlabeledLimit,
          testLimit: opts.testLimit,
          perClass,
          seeds,
          arms,
          valPerClass: opts.valPerClass,
          out: opts.out,
          overwrite: opts.overwrite,
          progress: !opts.quiet && !opts.json,
          log: (line) => note(opts, line),
        });
        output(
          opts,
          result,
          `${budgetMarkdown(result.cells, result.note)}\nFiles in ${result.out}: runs.arrow, summary.arrow, budget.md, budget.png, subsets.json`,
        );
        return 0;
      })(),
    );
  });
}
