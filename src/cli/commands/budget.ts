/** `selfsup budget`: argument parsing only; the work is `runBudget` in src/finetune. */
import {
  BUDGET_ARMS,
  type BudgetOptions,
  type BudgetResult,
  budgetMarkdown,
  checkBudgetArm,
  runBudget,
} from '../../finetune/budget.js';
import {
  DEFAULT_FINETUNE_RECIPE,
  defaultFinetuneRecipeFile,
  loadFinetuneRecipe,
} from '../../recipes/finetune-recipe.js';
import { backboneHelp, type GlobalOptions, imagesHelp, jobCommand, numberArg, parseIntegerList } from '../common.js';

/** The options as commander parses them: the library call's, named alike, with the lists still text. */
interface BudgetCliOptions
  extends GlobalOptions,
    Omit<BudgetOptions, 'recipe' | 'recipeFile' | 'perClass' | 'seeds' | 'arms'> {
  perClass: string;
  seeds: string;
  arms: string;
}

export const registerBudget = jobCommand({
  name: 'budget',
  description:
    'label-budget study: finetune with N labels per class over several seeds, from scratch vs pretrained vs other starts (init:<weights>) (vs + FixMatch)',
  argument: {
    name: '[recipe]',
    help: `the finetuning recipe every run uses (recipes/finetune-*.yaml; default: recipes/${DEFAULT_FINETUNE_RECIPE})`,
  },
  options: [
    { flags: '--backbone <path>', help: backboneHelp('the pretrained backbone'), required: true },
    {
      flags: '--labels <path>',
      help: imagesHelp('the labeled pool the N per class are drawn from'),
      required: true,
    },
    {
      flags: '--test <path>',
      help: imagesHelp('labeled test images (default: a stratified holdout of --labels, recipe eval.holdout)'),
    },
    { flags: '--per-class <list>', help: 'labels per class, comma-separated', default: '10,100' },
    { flags: '--seeds <list>', help: 'seeds, comma-separated', default: '0,1,2' },
    {
      flags: '--arms <list>',
      help:
        `what to compare, comma-separated: ${BUDGET_ARMS.join(', ')}, init:<weights> (finetune like pretrained, from ` +
        'other weights: a run, a backbone folder, .safetensors, a PyTorch .pth/.ckpt)',
      default: 'scratch,pretrained',
    },
    {
      flags: '--unlabeled <path>',
      help: imagesHelp(
        'unlabeled images for the +fixmatch and +self-training arms (default: the labeled pool, labels hidden)',
      ),
    },
    {
      flags: '--val-per-class <n>',
      help:
        'hold out n images per class of --labels as a validation split (in no label subset, not unlabeled); every ' +
        'run reports its accuracy on it; without --test it is the only evaluation. Choose recipes on it.',
      parse: numberArg({ integer: true, min: 1 }),
    },
  ],
  shared: { outputFolder: 'an earlier budget study', subsetLimits: true },
  helpAfter: `
Every arm runs the same recipe (default: recipes/${DEFAULT_FINETUNE_RECIPE}); the scratch arm starts from a
random initialisation, trains every layer at the head's learning rate and skips the recipe's linear probe
(probe:). The +fixmatch arms turn the recipe's fixmatch: on; the +self-training arms run its selfTraining:
rounds (at least one; with +fixmatch, round 0 is the FixMatch finetune); the other arms run neither.
Each run prints a line when it ends, and runs of 20 or more epochs one every tenth of their epochs too
(loss; FixMatch's mask rate and pseudo-label accuracy), unless --quiet.
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
  job: (recipeArg: string | undefined, opts: BudgetCliOptions) => {
    const recipeFile = recipeArg ?? defaultFinetuneRecipeFile();
    return {
      inputs: { '[recipe]': recipeFile, '--backbone': opts.backbone },
      prepare: () => ({
        perClass: parseIntegerList(opts.perClass, '--per-class', 1),
        seeds: parseIntegerList(opts.seeds, '--seeds', 0),
        arms: opts.arms.split(',').map((s) => checkBudgetArm(s.trim())),
        recipe: loadFinetuneRecipe(recipeFile),
      }),
      work: ({ prepared, io, options }) =>
        runBudget({
          ...options,
          ...prepared,
          recipeFile,
          progress: io.showProgress,
          log: io.note,
        }),
      format: (result: BudgetResult) =>
        `${budgetMarkdown(result.cells, result.note)}\nFiles in ${result.out}: runs.arrow, summary.arrow, budget.md, budget.png, subsets.json`,
    };
  },
});
