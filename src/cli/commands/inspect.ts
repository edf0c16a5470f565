/** `selfsup inspect`: what a PyTorch checkpoint holds (tensors, dtypes, shapes, backbones), without TensorFlow. */
import type { Command } from 'commander';
import { formatCheckpointSummary, inspectCheckpoint } from '../../export/pytorch/inspect.js';
import { type GlobalOptions, output, withGlobalOptions } from '../common.js';

export function registerInspect(program: Command, setResult: (p: Promise<number>) => void): void {
  withGlobalOptions(
    program
      .command('inspect')
      .description(
        'list what a PyTorch checkpoint (.pth/.pt/.ckpt/.bin) holds: entries, tensors with dtype and shape, and the ' +
          'ResNet backbones it recognises (reads only the pickle; no tensor data, no TensorFlow)',
      )
      .argument('<file>', 'a file written by torch.save (zip or legacy format)')
      .addHelpText(
        'after',
        [
          '',
          'Examples:',
          '  $ selfsup inspect epoch=99.ckpt',
          '  $ selfsup inspect moco_v2_800ep.pth.tar --json | jq .backbones',
          '',
          'A backbone is named by its path in the file (state_dict.module.encoder_q); pass that name, or its',
          'last part (encoder_q), to selfsup import --key, or append it to a path: --backbone file.pth#encoder_q.',
          'Exit codes: 0 ok, 1 unreadable or refused file (the message names it and any refused global), 2 bad options.',
        ].join('\n'),
      ),
  ).action((file: string, opts: GlobalOptions) => {
    setResult(
      (async () => {
        const summary = inspectCheckpoint(file);
        output(opts, summary, formatCheckpointSummary(summary));
        return 0;
      })(),
    );
  });
}
