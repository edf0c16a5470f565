/** `selfsup select-study`: argument parsing only; the work is `runSelectionStudyJob` in src/select. */
import { type Command, Option } from 'commander';
import { UNCERTAINTY_MEASURES, type UncertaintyMeasure } from '../../select/scores.js';
import { SELECTION_STRATEGIES, type SelectionStrategy } from '../../select/strategies.js';
import { runSelectionStudyJob, type SelectionStudyResult, studyTable } from '../../select/study.js';
import { UsageError } from '../../util/errors.js';
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
import { parseIntegerList } from './budget.js';

interface StudyCliOptions extends GlobalOptions {
  pool: string;
  test: string;
  out: string;
  overwrite?: boolean;
  classFolders?: boolean;
  strategies: string;
  seeds: string;
  rounds: number;
  perRound: number;
  poolLimit?: number;
  testLimit?: number;
  rareClasses?: string;
  rareFraction: number;
  measure: UncertaintyMeasure;
  firstRound: SelectionStrategy;
  inputSize?: number;
  batchSize: number;
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

export function registerSelectStudy(program: Command, setResult: (p: Promise<number>) => void): void {
  withGlobalOptions(
    program
      .command('select-study')
      .description('simulated labeling loop: rounds of select, reveal labels, fit, evaluate, per strategy and seed')
      .argument('<model>', 'the backbone: a run folder, a backbone folder, a .safetensors file or a model.json')
      .requiredOption('--pool <path>', 'labeled pool whose labels stay hidden until picked (class folders, table, IDX)')
      .requiredOption('--test <path>', 'labeled test images')
      .requiredOption('--out <dir>', 'output folder: new or empty (or an earlier study, with --overwrite)')
      .addOption(overwriteOption())
      .option('--class-folders', 'the subfolders of --pool and --test are classes')
      .option(
        '--strategies <list>',
        `comma-separated: ${SELECTION_STRATEGIES.join(', ')}`,
        SELECTION_STRATEGIES.join(','),
      )
      .option('--seeds <list>', 'seeds, comma-separated', '0,1,2')
      .option('--rounds <n>', 'rounds', numberArg({ min: 1, max: 1000, integer: true }), 10)
      .option('--per-round <n>', 'labels revealed per round', numberArg({ min: 1, integer: true }), 100)
      .option('--pool-limit <n>', 'use a seeded sample of at most n pool images', numberArg({ min: 2, integer: true }))
      .option('--test-limit <n>', 'use a seeded sample of at most n test images', numberArg({ min: 1, integer: true }))
      .option('--rare-classes <list>', 'make these class indices rare in the pool, comma-separated')
      .option('--rare-fraction <x>', 'fraction of each rare class kept', numberArg({ min: 1e-6, max: 1 }), 0.1)
      .addOption(
        new Option('--measure <name>', 'uncertainty measure').choices([...UNCERTAINTY_MEASURES]).default('margin'),
      )
      .addOption(
        new Option('--first-round <name>', 'round 1 of the strategies that need a classifier (there is none yet)')
          .choices(['random', 'diversity', 'typical'])
          .default('typical'),
      )
      .option(
        '--input-size <px>',
        "input side in px (default: the model's)",
        numberArg({ min: 8, max: 1024, integer: true }),
      )
      .option('--batch-size <n>', 'images per forward pass', numberArg({ min: 1, max: 4096, integer: true }), 256)
      .addHelpText(
        'after',
        `
The classifier of each round is a softmax regression on the frozen backbone's features;
round 1 starts from no labels, so strategies that need a classifier pick with --first-round there.
Outputs in --out: study.arrow (strategy, seed, round, labels, accuracy, macro_f1,
classes_covered, rare_picked, rare_share, select_seconds), study.md, accuracy.png.

Examples:
  $ selfsup select-study runs/fmnist --pool /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz --test /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz --out studies/select
  $ selfsup select-study runs/demo/pretrain --pool data/fashion-mnist-demo/labeled --test data/fashion-mnist-demo/test --class-folders --rounds 4 --per-round 20 --out studies/demo-select`,
      ),
  ).action((model: string, opts: StudyCliOptions) => {
    setResult(
      (async () => {
        requireExists(model, '<model>');
        requireExists(opts.pool, '--pool');
        requireExists(opts.test, '--test');
        const strategies = parseStrategies(opts.strategies);
        const seeds = parseIntegerList(opts.seeds, '--seeds');
        const rareClasses = opts.rareClasses ? parseIntegerList(opts.rareClasses, '--rare-classes') : undefined;
        startEngine(opts);
        const bars = new Map<string, ReturnType<typeof progressFor>>();
        const result = await runSelectionStudyJob({
          model,
          pool: opts.pool,
          test: opts.test,
          classFolders: opts.classFolders,
          strategies,
          seeds,
          rounds: opts.rounds,
          perRound: opts.perRound,
          poolLimit: opts.poolLimit,
          testLimit: opts.testLimit,
          rareClasses,
          rareFraction: opts.rareFraction,
          measure: opts.measure,
          firstRound: opts.firstRound,
          inputSize: opts.inputSize,
          batchSize: opts.batchSize,
          out: opts.out,
          overwrite: opts.overwrite,
          onStage: (text) => note(opts, text),
          onProgress: (stage, done, total) => {
            let bar = bars.get(stage);
            if (!bar) {
              bar = progressFor(opts, stage, total);
              bars.set(stage, bar);
            }
            bar.update(done);
            if (done === total) bar.finish();
          },
          onRound: (r) =>
            note(
              opts,
              `${r.strategy} seed ${r.seed} round ${r.round}: ${r.labels} labels, accuracy ${(r.accuracy * 100).toFixed(1)}%, rare share ${(r.rareShare * 100).toFixed(1)}%`,
            ),
        });
        output(opts, result, formatStudyResult(result));
        return 0;
      })(),
    );
  });
}
