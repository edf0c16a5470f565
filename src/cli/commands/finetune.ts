/** `selfsup finetune`: argument parsing only; the work is `runFinetune` in src/finetune. */
import { type DataSpec, type FinetuneSummary, runFinetune } from '../../finetune/run.js';
import type { SelfTrainingRound } from '../../finetune/self-training.js';
import {
  DEFAULT_FINETUNE_RECIPE,
  defaultFinetuneRecipeFile,
  loadFinetuneRecipe,
} from '../../recipes/finetune-recipe.js';
import { UsageError } from '../../util/errors.js';
import { backboneHelp, type GlobalOptions, imagesHelp, jobCommand, numberArg } from '../common.js';

/** The options as commander parses them; the data options are the library's (DataSpec). */
interface FinetuneCliOptions extends GlobalOptions, DataSpec {
  backbone: string;
  out: string;
  overwrite?: boolean;
  fromScratch?: boolean;
  seed?: number;
  perClass?: number;
  minority?: string;
  minorityFactor: number;
  flipLabels?: number;
  subsetSeed?: number;
  resume?: boolean;
}

/** Parses a comma-separated list of class indices (`--minority 0,3,6`). */
export function parseClassList(value: string, option: string): number[] {
  const parts = value.split(',').map((s) => s.trim());
  const out = parts.map(Number);
  if (parts.some((p) => p === '') || out.some((n) => !Number.isInteger(n) || n < 0)) {
    throw new UsageError(`Expected a comma-separated list of class indices for ${option} but received "${value}"`);
  }
  return out;
}

/** One line per self-training round. */
export function formatSelfTrainingRound(r: SelfTrainingRound): string {
  const pct = (v: number) => `${(100 * v).toFixed(1)}%`;
  return (
    `round ${r.round}: ${r.pseudoLabeled} pseudo-labels (${pct(r.coverage)} of the unlabeled images` +
    `${r.pseudoLabelAccuracy !== undefined ? `, ${pct(r.pseudoLabelAccuracy)} right` : ''}), student accuracy ${pct(r.accuracy)} (${r.seconds.toFixed(0)} s)`
  );
}

export function formatFinetuneSummary(s: FinetuneSummary): string {
  const pct = (v: number) => `${(100 * v).toFixed(1)}%`;
  const lines = [
    `Finetuned ${s.name ?? 'model'} on ${s.trainImages} labeled images${s.unlabeledImages ? ` + ${s.unlabeledImages} unlabeled` : ''} in ${s.seconds.toFixed(0)} s (${s.epochs} epochs)`,
    `  ${s.evaluatedOn} set (${s.testImages} images): accuracy ${pct(s.accuracy)}, macro-F1 ${s.macroF1.toFixed(3)}, ECE ${s.ece.toFixed(3)}`,
  ];
  if (s.maskRate !== undefined) {
    lines.push(
      `  FixMatch last epoch: mask rate ${pct(s.maskRate)}${s.pseudoLabelAccuracy !== undefined ? `, pseudo-label accuracy ${pct(s.pseudoLabelAccuracy)}` : ''}`,
    );
  }
  if (s.selfTraining) {
    lines.push(`  self-training: round 0 accuracy ${pct(s.selfTraining.firstAccuracy)}`);
    for (const r of s.selfTraining.rounds) lines.push(`    ${formatSelfTrainingRound(r)}`);
  }
  if (s.flippedPrecisionAtK !== undefined)
    lines.push(`  label review: precision at k of the flipped labels ${pct(s.flippedPrecisionAtK)}`);
  if (s.evaluatedOn === 'train')
    lines.push('  note: evaluated on the training images (no --test, eval.holdout 0): optimistic');
  if (s.skippedImages) lines.push(`  skipped ${s.skippedImages} unreadable image(s), listed in skipped.json`);
  lines.push(`  model, report/, label-review.arrow, history.arrow in ${s.out}`);
  return lines.join('\n');
}

export const registerFinetune = jobCommand({
  name: 'finetune',
  description:
    'train a classifier on a (pre)trained backbone from labeled images; writes the model, a report and a label review',
  argument: {
    name: '[recipe]',
    help: `a finetuning recipe (recipes/finetune-*.yaml; default: recipes/${DEFAULT_FINETUNE_RECIPE})`,
  },
  options: [
    {
      flags: '--backbone <path>',
      help: backboneHelp('the backbone to finetune (--from-scratch: its architecture)'),
      required: true,
    },
    { flags: '--labels <path>', help: imagesHelp('labeled images'), required: true },
    {
      flags: '--resume',
      help: 'continue an interrupted finetune of --out from its last checkpoint (<out>.training/); same recipe, backbone and data',
    },
    {
      flags: '--unlabeled <path>',
      help: imagesHelp(
        'unlabeled images for FixMatch and self-training (labels they have only serve to report pseudo-label accuracy)',
      ),
    },
    {
      flags: '--test <path>',
      help: imagesHelp(
        'labeled images for the report (default: a stratified holdout of --labels, recipe eval.holdout)',
      ),
    },
    { flags: '--from-scratch', help: 'same architecture as --backbone but randomly initialised (the baseline)' },
    { flags: '--seed <n>', help: 'override the recipe seed', parse: numberArg({ integer: true, min: 0 }) },
    {
      flags: '--per-class <n>',
      help: 'experiment: keep n labeled images per class',
      parse: numberArg({ integer: true, min: 1 }),
    },
    {
      flags: '--minority <classes>',
      help: 'experiment: class indices (comma-separated) that keep only --minority-factor of their labels',
    },
    {
      flags: '--minority-factor <x>',
      help: 'fraction kept for --minority classes',
      parse: numberArg({ min: 0.001, max: 1 }),
      default: 0.1,
    },
    {
      flags: '--flip-labels <fraction>',
      help: 'experiment: flip this fraction of training labels (the label review reports precision at k)',
      parse: numberArg({ min: 0, max: 0.9 }),
    },
    {
      flags: '--subset-seed <n>',
      help: 'seed of the experiment subsets (default: the recipe seed)',
      parse: numberArg({ integer: true, min: 0 }),
    },
  ],
  shared: { outputFolder: 'an earlier finetune output', subsetLimits: true },
  helpAfter: `
Outputs in --out: classifier.json + classifier.safetensors (the model), backbone/ (finetuned backbone,
torchvision names), recipe.yaml (resolved), history.arrow, metrics.arrow + curves.png (per step),
report/ (report.json, report.md, predictions.arrow, confusion.arrow/.png, reliability.png),
label-review.arrow, imbalance.json, summary.json.
While training, checkpoints go to <out>.training/ (removed at the end); after a crash or kill,
run the same command with --resume to continue from the last one. A loss that turns NaN or
explodes stops the run (exit 1) and keeps the last good checkpoint.

Without a recipe, finetune uses recipes/${DEFAULT_FINETUNE_RECIPE}: every layer trained from the first step,
chosen for small label budgets on a validation split of Fashion-MNIST (see the recipe's comment).

Examples:
  $ selfsup finetune --backbone runs/simclr --labels data/fashion-mnist-demo/labeled --test data/fashion-mnist-demo/test \\
      --out models/default
  $ selfsup finetune recipes/finetune-linear-probe.yaml --backbone runs/simclr --labels data/fashion-mnist-demo/labeled \\
      --test data/fashion-mnist-demo/test --out models/probe
  $ selfsup finetune recipes/finetune-fixmatch.yaml --backbone runs/simclr --labels data/fashion-mnist-demo/labeled \\
      --unlabeled data/fashion-mnist-demo/unlabeled --out models/fixmatch
  $ selfsup finetune recipes/finetune-focal.yaml --backbone exports/resnet18 --labels /data/fmnist --test /data/fmnist \\
      --per-class 100 --minority 0,2,4,6,8 --minority-factor 0.1 --out models/focal-imbalanced`,
  job: (recipeArg: string | undefined, opts: FinetuneCliOptions) => {
    const recipeFile = recipeArg ?? defaultFinetuneRecipeFile();
    return {
      inputs: { '[recipe]': recipeFile, '--backbone': opts.backbone },
      prepare: () => {
        const recipe = loadFinetuneRecipe(recipeFile);
        if (opts.seed !== undefined) recipe.seed = opts.seed;
        return recipe;
      },
      work: ({ prepared: recipe, io }) => {
        io.note(`finetune: recipe ${recipeFile}, backbone ${opts.backbone}${opts.fromScratch ? ' (random init)' : ''}`);
        return runFinetune({
          recipe,
          recipeFile,
          backbone: opts.backbone,
          fromScratch: opts.fromScratch,
          labels: opts.labels,
          unlabeled: opts.unlabeled,
          unlabeledLimit: opts.unlabeledLimit,
          testLimit: opts.testLimit,
          test: opts.test,
          out: opts.out,
          overwrite: opts.overwrite,
          subsets: {
            perClass: opts.perClass,
            minorityClasses: opts.minority ? parseClassList(opts.minority, '--minority') : undefined,
            minorityFactor: opts.minorityFactor,
            flipFraction: opts.flipLabels,
            seed: opts.subsetSeed,
          },
          resume: opts.resume,
          progress: io.showProgress,
          onWarning: io.warn,
          onNote: io.note,
          onRound: (r) => io.note(`self-training ${formatSelfTrainingRound(r)}`),
          onEpoch: (m) =>
            io.note(
              `epoch ${m.epoch + 1} (${m.stage < 0 ? 'probe' : `stage ${m.stage + 1}`}): loss ${m.loss.toFixed(4)}, train accuracy ${(100 * m.trainAccuracy).toFixed(1)}%` +
                (m.maskRate !== undefined ? `, mask rate ${(100 * m.maskRate).toFixed(1)}%` : '') +
                (m.pseudoLabelAccuracy !== undefined
                  ? `, pseudo-label accuracy ${(100 * m.pseudoLabelAccuracy).toFixed(1)}%`
                  : '') +
                (m.auxiliaryLoss !== undefined ? `, auxiliary loss ${m.auxiliaryLoss.toFixed(4)}` : '') +
                ` (${m.seconds.toFixed(1)} s)`,
            ),
        });
      },
      format: formatFinetuneSummary,
    };
  },
});
