/** `selfsup demo`: argument parsing only; the work is `runDemo` in src/demo. */
import type { Command } from 'commander';
import { formatDemoResult, runDemo } from '../../demo/demo.js';
import { type GlobalOptions, note, numberArg, output, startEngine, withGlobalOptions } from '../common.js';

interface DemoCliOptions extends GlobalOptions {
  out: string;
  quick?: boolean;
  data?: string;
  seed: number;
}

export function registerDemo(program: Command, setResult: (p: Promise<number>) => void): void {
  withGlobalOptions(
    program
      .command('demo')
      .description(
        'the main job end to end on the shipped Fashion-MNIST sample: scan, pretrain, export, finetune + report, embed',
      )
      .option('--out <dir>', 'output folder (a previous demo there is replaced)', 'runs/demo')
      .option('--quick', 'a tiny budget (256 images, a few steps): checks the whole path in about a minute')
      .option('--data <dir>', 'the demo data folder (default: data/fashion-mnist-demo of the package)')
      .option('--seed <n>', 'run seed', numberArg({ min: 0, integer: true }), 0)
      .addHelpText(
        'after',
        `
Takes a few minutes on a 2-core CPU with native TensorFlow. At the end it prints
where each output is: scan manifest, run folder, checkpoint, curves, exports,
finetuning report, embeddings and the embedding map.

Examples:
  $ npm run demo
  $ selfsup demo --out /tmp/demo --quick`,
      ),
  ).action((opts: DemoCliOptions) => {
    setResult(
      (async () => {
        startEngine(opts);
        const result = await runDemo({
          out: opts.out,
          quick: opts.quick,
          data: opts.data,
          seed: opts.seed,
          progress: !opts.quiet && !opts.json,
          onStep: (n, total, title) => note(opts, `\n[${n}/${total}] ${title}`),
        });
        output(opts, result, formatDemoResult(result));
        return 0;
      })(),
    );
  });
}
