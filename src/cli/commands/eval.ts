/** `selfsup eval`: argument parsing only; the work is `runEvaluation` in src/finetune. */
import type { Command } from 'commander';
import type { CompileSetting, PrecisionSetting } from '../../engine/graph-path.js';
import { type EvalSummary, runEvaluation } from '../../finetune/eval-job.js';
import {
  type GlobalOptions,
  imagesHelp,
  numberArg,
  optionOf,
  overwriteOption,
  runJob,
  withGlobalOptions,
} from '../common.js';
import { FORWARD_PASS_OPTIONS } from '../forward-pass-options.js';

interface EvalCliOptions extends GlobalOptions {
  labels: string;
  out?: string;
  overwrite?: boolean;
  batchSize: number;
  bins: number;
  compile: CompileSetting;
  precision: PrecisionSetting;
}

export function formatEvalSummary(s: EvalSummary): string {
  return [
    `Evaluated ${s.images} images: accuracy ${(100 * s.accuracy).toFixed(1)}%, macro-F1 ${s.macroF1.toFixed(3)}, ECE ${s.ece.toFixed(3)}`,
    ...(s.skippedImages ? [`  skipped ${s.skippedImages} unreadable image(s) (listed in report.json)`] : []),
    `  report in ${s.out} (report.md, report.json, predictions.arrow, confusion.arrow/.png, reliability.png)`,
  ].join('\n');
}

export function registerEval(program: Command, setResult: (p: Promise<number>) => void): void {
  withGlobalOptions(
    program
      .command('eval')
      .description(
        'evaluate a finetuned model on labeled images: per-class metrics, confusion matrix, calibration, predictions',
      )
      .argument('<model>', 'a model folder written by `selfsup finetune`')
      .requiredOption('--labels <path>', imagesHelp('labeled images (of a folder of IDX files, the t10k split)'))
      .option('--out <dir>', 'report folder: new or empty (default: <model>/eval-<labels name>)')
      .addOption(overwriteOption())
      .option('--batch-size <n>', 'images per forward pass', numberArg({ integer: true, min: 1, max: 65536 }), 256)
      .option(
        '--bins <n>',
        'calibration bins of the expected calibration error',
        numberArg({ integer: true, min: 2, max: 100 }),
        15,
      )
      .addOption(optionOf(FORWARD_PASS_OPTIONS[0]))
      .addOption(optionOf(FORWARD_PASS_OPTIONS[1]))
      .addHelpText(
        'after',
        `
Examples:
  $ selfsup eval models/probe --labels data/fashion-mnist-demo/test
  $ selfsup eval models/probe --labels /usr/share/datasets/fashion-mnist --out reports/probe-t10k --json`,
      ),
  ).action((model: string, opts: EvalCliOptions) => {
    runJob(setResult, opts, {
      inputs: { '<model>': model, '--labels': opts.labels },
      work: ({ io }) =>
        runEvaluation({
          model,
          labels: opts.labels,
          out: opts.out,
          overwrite: opts.overwrite,
          batchSize: opts.batchSize,
          calibrationBins: opts.bins,
          progress: io.showProgress,
          inference: { compile: opts.compile, precision: opts.precision },
          onNote: io.note,
        }),
      format: formatEvalSummary,
    });
  });
}
