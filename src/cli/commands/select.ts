/**
 * The selection commands, argument parsing only: `selfsup select` (the work is
 * `selectImages` in src/select) and `selfsup select-study` (`runSelectionStudyJob`).
 */
import {
  PICK_EXPORTS,
  type SelectImagesOptions,
  type SelectImagesResult,
  selectImages,
} from '../../select/select-images.js';
import { SELECTION_STRATEGIES, type SelectionStrategy } from '../../select/strategies.js';
import {
  runSelectionStudyJob,
  type SelectionStudyJob,
  type SelectionStudyResult,
  studyTable,
} from '../../select/study.js';
import { UsageError } from '../../util/errors.js';
import {
  type GlobalOptions,
  imagesHelp,
  jobCommand,
  measureOption,
  modelArgument,
  numberArg,
  parseIntegerList,
  stageCallbacks,
} from '../common.js';

/** The options as commander parses them: the library call's, named alike. */
interface SelectCliOptions extends GlobalOptions, Omit<SelectImagesOptions, 'model'> {}

/** Human summary: how many were picked, from what, and where the outputs are. */
export function formatSelectResult(r: SelectImagesResult): string {
  const lines = [
    `Picked ${r.picks.length} of ${r.poolImages} images (${r.strategy}) in ${r.seconds.toFixed(1)} s`,
    `  list           ${r.files.list}  (also ${r.files.table})`,
    `  contact sheet  ${r.files.sheet}`,
  ];
  if (r.files.picks) lines.push(`  files          ${r.files.picks}`);
  if (r.excludedLabeled > 0) lines.push(`  left out       ${r.excludedLabeled} pool image(s) that are labeled files`);
  if (r.skippedDuplicates > 0) {
    lines.push(`  passed over    ${r.skippedDuplicates} near-duplicate(s) of picked or labeled images`);
  }
  if (r.failures.length > 0) {
    lines.push(`  skipped        ${r.failures.length} unreadable image(s):`);
    for (const f of r.failures.slice(0, 5)) {
      lines.push(`    ${f.reason.startsWith(f.path) ? f.reason : `${f.path}: ${f.reason}`}`);
    }
  }
  const head = r.picks
    .slice(0, 5)
    .map((p) => `    #${p.rank} ${p.path}${p.predictedClass ? ` (${p.predictedClass})` : ''}`);
  if (head.length > 0) lines.push('  first picks:', ...head);
  return lines.join('\n');
}

export const registerSelect = jobCommand({
  name: 'select',
  description:
    'choose which images of an unlabeled pool to label next (diversity, typical, uncertainty, hybrid, balanced, random)',
  argument: modelArgument('a finetuned model folder (every strategy), or for random, diversity and typical a backbone'),
  options: [
    { flags: '--data <path>', help: imagesHelp('the unlabeled pool'), required: true },
    {
      flags: '--budget <n>',
      help: 'how many images to pick',
      parse: numberArg({ min: 1, integer: true }),
      required: true,
    },
    { flags: '--strategy <name>', help: 'how to pick', choices: SELECTION_STRATEGIES, default: 'typical' },
    measureOption('uncertainty measure (uncertainty, hybrid)'),
    {
      flags: '--labeled <path>',
      help: imagesHelp('images already labeled, never picked again, nor their near-duplicates'),
    },
    {
      flags: '--class-folders',
      help: 'the subfolders of --labeled (and --data) are classes (balanced counts their labels)',
    },
    {
      flags: '--duplicate-threshold <x>',
      help: 'cosine similarity at or above which an image is a near-duplicate of a picked or labeled one (0-1]',
      parse: numberArg({ min: 1e-6, max: 1 }),
      default: 0.98,
    },
    { flags: '--seed <n>', help: 'seed of every random choice', parse: numberArg({ integer: true }), default: 0 },
    {
      flags: '--export-picks <how>',
      help: 'also put the picked files in <out>/picks/',
      choices: PICK_EXPORTS,
      default: 'none',
    },
  ],
  shared: { outputFolder: 'an earlier selection', forwardPass: { batchSize: 128, inputSize: "the model's" } },
  helpAfter: `
Strategies: diversity = k-center greedy on the backbone's embeddings (covers the pool,
rare kinds of image included); typical = the image nearest the centre of each of --budget
clusters (representative picks); uncertainty = the classifier's least certain images
(--measure margin|entropy|least-confidence); hybrid = the most uncertain image of each of
--budget clusters; balanced = round-robin over predicted classes, fewest labels first;
random = the seeded baseline. A near-duplicate of a picked or labeled image is never picked.

Outputs in --out: selection.csv and selection.arrow (rank, path, score, predicted class and
probability, nearest labeled image and its cosine distance), contact-sheet.png, summary.json,
and picks/ with --export-picks copy|link.

Examples:
  $ selfsup select runs/demo/pretrain --data data/fashion-mnist-demo/unlabeled --budget 50 --out to-label
  $ selfsup select runs/demo/finetune --data data/fashion-mnist-demo/unlabeled --labeled data/fashion-mnist-demo/train --class-folders --strategy hybrid --budget 50 --out to-label-2`,
  job: (model, opts: SelectCliOptions) => ({
    inputs: { '<model>': model, '--data': opts.data, '--labeled': opts.labeled },
    work: ({ io, options }) => selectImages({ ...options, model: model as string, ...stageCallbacks(io) }),
    format: formatSelectResult,
  }),
});

// selfsup select-study

/** The options as commander parses them: the library call's, named alike, with the lists still text. */
interface StudyCliOptions
  extends GlobalOptions,
    Omit<SelectionStudyJob, 'model' | 'strategies' | 'seeds' | 'rareClasses'> {
  strategies: string;
  seeds: string;
  rareClasses?: string;
}

function parseStrategies(value: string): SelectionStrategy[] {
  const names = value.split(',').map((s) => s.trim());
  for (const name of names) {
    if (!(SELECTION_STRATEGIES as readonly string[]).includes(name)) {
      throw new UsageError(
        `Expected a comma-separated list of ${SELECTION_STRATEGIES.join(', ')} for --strategies but received "${value}"`,
      );
    }
  }
  return names as SelectionStrategy[];
}

export function formatStudyResult(r: SelectionStudyResult): string {
  return [
    `Selection study: ${r.poolImages} pool images, ${r.testImages} test images; embedding ${r.embedSeconds.toFixed(1)} s, study ${r.studySeconds.toFixed(1)} s`,
    '',
    'Test accuracy (%), mean ± std over seeds:',
    studyTable(r.rows, 'accuracy'),
    '',
    `  table   ${r.files.table}`,
    `  report  ${r.files.report}`,
    `  plot    ${r.files.plot}`,
  ].join('\n');
}

export const registerSelectStudy = jobCommand({
  name: 'select-study',
  description: 'simulated labeling loop: rounds of select, reveal labels, fit, evaluate, per strategy and seed',
  argument: modelArgument('the backbone'),
  options: [
    {
      flags: '--pool <path>',
      help: imagesHelp('labeled pool whose labels stay hidden until picked'),
      required: true,
    },
    { flags: '--test <path>', help: imagesHelp('labeled test images'), required: true },
    { flags: '--class-folders', help: 'the subfolders of --pool and --test are classes' },
    {
      flags: '--strategies <list>',
      help: `comma-separated: ${SELECTION_STRATEGIES.join(', ')}`,
      default: SELECTION_STRATEGIES.join(','),
    },
    { flags: '--seeds <list>', help: 'seeds, comma-separated', default: '0,1,2' },
    { flags: '--rounds <n>', help: 'rounds', parse: numberArg({ min: 1, max: 1000, integer: true }), default: 10 },
    {
      flags: '--per-round <n>',
      help: 'labels revealed per round',
      parse: numberArg({ min: 1, integer: true }),
      default: 100,
    },
    {
      flags: '--pool-limit <n>',
      help: 'use a seeded sample of at most n pool images',
      parse: numberArg({ min: 2, integer: true }),
    },
    {
      flags: '--test-limit <n>',
      help: 'use a seeded sample of at most n test images',
      parse: numberArg({ min: 1, integer: true }),
    },
    { flags: '--rare-classes <list>', help: 'make these class indices rare in the pool, comma-separated' },
    {
      flags: '--rare-fraction <x>',
      help: 'fraction of each rare class kept',
      parse: numberArg({ min: 1e-6, max: 1 }),
      default: 0.1,
    },
    measureOption('uncertainty measure'),
    {
      flags: '--first-round <name>',
      help: 'round 1 of the strategies that need a classifier (there is none yet)',
      choices: ['random', 'diversity', 'typical'],
      default: 'typical',
    },
  ],
  shared: { outputFolder: 'an earlier study', forwardPass: { batchSize: 256, inputSize: "the model's" } },
  helpAfter: `
The classifier of each round is a softmax regression on the frozen backbone's features;
round 1 starts from no labels, so strategies that need a classifier pick with --first-round there.
Outputs in --out: study.arrow (strategy, seed, round, labels, accuracy, macro_f1,
classes_covered, rare_picked, rare_share, select_seconds), study.md, accuracy.png.

Examples:
  $ selfsup select-study runs/fmnist --pool /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz --test /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz --out studies/select
  $ selfsup select-study runs/demo/pretrain --pool data/fashion-mnist-demo/labeled --test data/fashion-mnist-demo/test --class-folders --rounds 4 --per-round 20 --out studies/demo-select`,
  job: (model: string | undefined, opts: StudyCliOptions) => ({
    inputs: { '<model>': model, '--pool': opts.pool, '--test': opts.test },
    prepare: () => ({
      strategies: parseStrategies(opts.strategies),
      seeds: parseIntegerList(opts.seeds, '--seeds'),
      rareClasses: opts.rareClasses ? parseIntegerList(opts.rareClasses, '--rare-classes') : undefined,
    }),
    work: ({ prepared, io, options }) =>
      runSelectionStudyJob({
        ...options,
        ...prepared,
        model: model as string,
        ...stageCallbacks(io),
        onRound: (r) =>
          io.note(
            `${r.strategy} seed ${r.seed} round ${r.round}: ${r.labels} labels, accuracy ${(r.accuracy * 100).toFixed(1)}%, rare share ${(r.rareShare * 100).toFixed(1)}%`,
          ),
      }),
    format: formatStudyResult,
  }),
});
