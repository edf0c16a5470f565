/** `selfsup select`: argument parsing only; the work is `selectImages` in src/select. */
import {
  PICK_EXPORTS,
  type SelectImagesOptions,
  type SelectImagesResult,
  selectImages,
} from '../../select/select-images.js';
import { SELECTION_STRATEGIES } from '../../select/strategies.js';
import {
  type GlobalOptions,
  imagesHelp,
  jobCommand,
  measureOption,
  modelArgument,
  numberArg,
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
