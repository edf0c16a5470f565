/** `selfsup embed`: argument parsing only; the work is `embedFolder` in src/embed. */
import type { Command } from 'commander';
import { type EmbedFolderResult, embedFolder } from '../../embed/embed-folder.js';
import {
  type GlobalOptions,
  note,
  numberArg,
  output,
  overwriteOption,
  progressFor,
  requireExists,
  startEngine,
  withGlobalOptions,
} from '../common.js';

interface EmbedCliOptions extends GlobalOptions {
  data: string;
  out: string;
  overwrite?: boolean;
  classFolders?: boolean;
  labels?: string;
  duplicateThreshold: number;
  neighbors: number;
  outliers: number;
  map: boolean;
  center: boolean;
  seed: number;
  mapEpochs?: number;
  inputSize?: number;
  batchSize: number;
  limit?: number;
}

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

export function registerEmbed(program: Command, setResult: (p: Promise<number>) => void): void {
  withGlobalOptions(
    program
      .command('embed')
      .description(
        'embed images with a backbone: embeddings (Arrow), near-duplicate pairs, outliers, and a 2-D map (PNG)',
      )
      .argument(
        '<model>',
        'a run folder, a backbone folder (manifest.json + backbone.safetensors), a .safetensors file, a PyTorch ' +
          '.pth/.ckpt (file.pth#key) or a tfjs model.json',
      )
      .requiredOption('--data <path>', 'images: a folder, a scan manifest.arrow, a labels .csv/.arrow, or an IDX file')
      .requiredOption('--out <dir>', 'output folder: new or empty (or an earlier embed output, with --overwrite)')
      .addOption(overwriteOption())
      .option('--class-folders', 'treat the subfolders of --data as classes (labels colour the map)')
      .option('--labels <file>', 'IDX labels file for an IDX --data (default: the sibling labels file)')
      .option(
        '--duplicate-threshold <x>',
        'cosine similarity at or above which a pair is a near-duplicate (-1..1)',
        numberArg({ min: -1, max: 1 }),
        0.98,
      )
      .option(
        '--neighbors <k>',
        'neighbours for outlier scores and the map (2-200)',
        numberArg({ min: 2, max: 200, integer: true }),
        10,
      )
      .option('--outliers <n>', 'how many outliers to list', numberArg({ min: 0, integer: true }), 50)
      .option('--no-map', 'skip the 2-D map')
      .option('--no-center', 'compare raw embeddings (default: subtract the mean embedding first)')
      .option('--seed <n>', 'seed of the map layout and of --limit sampling', numberArg({ integer: true }), 0)
      .option(
        '--map-epochs <n>',
        'UMAP epochs (default 500 below 2,000 images, else 200)',
        numberArg({ min: 10, max: 5000, integer: true }),
      )
      .option(
        '--input-size <px>',
        'input side in px (default: from the export manifest)',
        numberArg({ min: 8, max: 1024, integer: true }),
      )
      .option('--batch-size <n>', 'images per forward pass', numberArg({ min: 1, max: 4096, integer: true }), 128)
      .option('--limit <n>', 'embed a seeded random sample of at most n images', numberArg({ min: 3, integer: true }))
      .addHelpText(
        'after',
        `
Outputs in --out: embeddings.arrow (index, path, label, class, vector: FixedSizeList<float32>),
near-duplicates.arrow, outliers.arrow, map.png + map.arrow (x, y), summary.json, failures.arrow.

Examples:
  $ selfsup embed runs/demo/pretrain --data data/fashion-mnist-demo/unlabeled --out runs/demo/embed
  $ selfsup embed exports/resnet18 --data data/fashion-mnist-demo/test --class-folders --out embed-test
  $ selfsup embed runs/demo/pretrain --data data/fashion-mnist-demo/idx/t10k-images-idx3-ubyte.gz --out embed-idx --json`,
      ),
  ).action((model: string, opts: EmbedCliOptions) => {
    setResult(
      (async () => {
        requireExists(model, '<model>');
        requireExists(opts.data, '--data');
        if (opts.labels) requireExists(opts.labels, '--labels');
        startEngine(opts);
        let progress: ReturnType<typeof progressFor> | undefined;
        const result = await embedFolder({
          model,
          data: opts.data,
          out: opts.out,
          overwrite: opts.overwrite,
          classFolders: opts.classFolders,
          labels: opts.labels,
          duplicateThreshold: opts.duplicateThreshold,
          neighbors: opts.neighbors,
          outliers: opts.outliers,
          map: opts.map,
          center: opts.center,
          seed: opts.seed,
          mapEpochs: opts.mapEpochs,
          inputSize: opts.inputSize,
          batchSize: opts.batchSize,
          limit: opts.limit,
          onStage: (text) => note(opts, text),
          onWarning: (message) => process.stderr.write(`selfsup: warning: ${message}\n`),
          onProgress: (done, total) => {
            progress ??= progressFor(opts, 'embed', total);
            progress.update(done);
            if (done === total) progress.finish();
          },
        });
        output(opts, result, formatEmbedResult(result));
        return 0;
      })(),
    );
  });
}
