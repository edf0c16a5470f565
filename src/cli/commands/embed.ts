/** `selfsup embed`: argument parsing only; the work is `embedFolder` in src/embed. */
import { type EmbedFolderOptions, type EmbedFolderResult, embedFolder } from '../../embed/embed-folder.js';
import { type GlobalOptions, imagesHelp, jobCommand, modelArgument, numberArg } from '../common.js';
import { FORWARD_PASS_OPTIONS } from '../forward-pass-options.js';

/** The options as commander parses them: the library call's, named alike. */
interface EmbedCliOptions extends GlobalOptions, Omit<EmbedFolderOptions, 'model'> {}

/** Human summary of an embedding run: where each output is. */
export function formatEmbedResult(r: EmbedFolderResult): string {
  const lines = [
    `Embedded ${r.images} of ${r.sourceImages} images (${r.dim}-d features) in ${r.seconds.toFixed(1)} s, model ${r.modelFile}`,
    `  embeddings       ${r.files.embeddings}`,
    `  near-duplicates  ${r.files.duplicates}  (${r.duplicatePairs} pair(s) with ${r.centered ? 'centred ' : ''}cosine similarity >= ${r.duplicateThreshold}${r.duplicatePairsTruncated ? ', list cut' : ''})`,
    `  outliers         ${r.files.outliers}  (${r.outliersListed} listed, lowest mean similarity to ${r.neighbors} neighbours first)`,
  ];
  if (r.files.map) lines.push(`  map              ${r.files.map}${r.labeled ? ' (coloured by label)' : ''}`);
  if (r.failures.length > 0) {
    lines.push(`  skipped          ${r.failures.length} unreadable image(s), listed in failures.arrow:`);
    for (const f of r.failures.slice(0, 5)) lines.push(`    ${f.path}: ${f.reason}`);
  }
  return lines.join('\n');
}

export const registerEmbed = jobCommand({
  name: 'embed',
  description: 'embed images with a backbone: embeddings (Arrow), near-duplicate pairs, outliers, and a 2-D map (PNG)',
  argument: modelArgument('the backbone'),
  options: [
    { flags: '--data <path>', help: imagesHelp('images'), required: true },
    { flags: '--class-folders', help: 'treat the subfolders of --data as classes (labels colour the map)' },
    { flags: '--labels <file>', help: 'IDX labels file for an IDX --data (default: the sibling labels file)' },
    {
      flags: '--duplicate-threshold <x>',
      help: 'cosine similarity at or above which a pair is a near-duplicate (-1..1)',
      parse: numberArg({ min: -1, max: 1 }),
      default: 0.98,
    },
    {
      flags: '--neighbors <k>',
      help: 'neighbours for outlier scores and the map (2-200)',
      parse: numberArg({ min: 2, max: 200, integer: true }),
      default: 10,
    },
    {
      flags: '--outliers <n>',
      help: 'how many outliers to list',
      parse: numberArg({ min: 0, integer: true }),
      default: 50,
    },
    { flags: '--no-map', help: 'skip the 2-D map' },
    { flags: '--no-center', help: 'compare raw embeddings (default: subtract the mean embedding first)' },
    {
      flags: '--seed <n>',
      help: 'seed of the map layout and of --limit sampling',
      parse: numberArg({ integer: true }),
      default: 0,
    },
    {
      flags: '--map-epochs <n>',
      help: 'UMAP epochs (default 500 below 2,000 images, else 200)',
      parse: numberArg({ min: 10, max: 5000, integer: true }),
    },
    {
      flags: '--limit <n>',
      help: 'embed a seeded random sample of at most n images',
      parse: numberArg({ min: 3, integer: true }),
    },
    ...FORWARD_PASS_OPTIONS,
  ],
  shared: {
    outputFolder: 'an earlier embed output',
    forwardPass: { batchSize: 128, inputSize: 'from the export manifest' },
  },
  helpAfter: `
Outputs in --out: embeddings.arrow (index, path, label, class, vector: FixedSizeList<float32>),
near-duplicates.arrow, outliers.arrow, map.png + map.arrow (x, y), summary.json, failures.arrow.

Examples:
  $ selfsup embed runs/demo/pretrain --data data/fashion-mnist-demo/unlabeled --out runs/demo/embed
  $ selfsup embed exports/resnet18 --data data/fashion-mnist-demo/test --class-folders --out embed-test
  $ selfsup embed runs/demo/pretrain --data data/fashion-mnist-demo/idx/t10k-images-idx3-ubyte.gz --out embed-idx --json`,
  job: (model, opts: EmbedCliOptions) => ({
    inputs: { '<model>': model, '--data': opts.data, '--labels': opts.labels },
    work: ({ io, options }) =>
      embedFolder({
        ...options,
        model: model as string,
        onStage: io.note,
        onWarning: io.warn,
        onProgress: (done, total) => io.progress('embed', done, total),
      }),
    format: formatEmbedResult,
  }),
});
