import type { Command } from 'commander';
import { formatScanSummary, scanFolder } from '../../data/scan.js';
import { assertInteger, UsageError } from '../../util/errors.js';
import { type GlobalOptions, output, withGlobalOptions } from '../common.js';

interface ScanCommandOptions extends GlobalOptions {
  out: string;
  previous?: string;
  full?: boolean;
  concurrency: string;
  maxPixels: string;
  hidden?: boolean;
  progress: boolean;
}

export function registerScan(program: Command, setResult: (p: Promise<number>) => void): void {
  withGlobalOptions(
    program
      .command('scan')
      .argument('<dir>', 'folder of images (searched recursively; symlinks followed, loops skipped)')
      .description(
        'list every file under DIR in an Arrow manifest (path, bytes, mtime, hash, width, height, channels, format, status, error); a rescan reopens only new or changed files',
      )
      .option('--out <file>', 'manifest to write (Arrow IPC, written atomically)', 'manifest.arrow')
      .option('--previous <file>', 'earlier manifest to reuse rows from (default: --out when it exists)')
      .option('--full', 'reopen every file, ignoring any earlier manifest')
      .option('--concurrency <n>', 'files opened at once', '8')
      .option('--max-pixels <n>', 'refuse images with more pixels (decompression bombs)', '100000000')
      .option('--hidden', 'include dot-files and dot-folders')
      .option('--no-progress', 'no progress bar')
      .addHelpText(
        'after',
        '\nBad files (empty, truncated, corrupt, not an image, too many pixels, unreadable) are kept in the\n' +
          'manifest with status "error" and the reason; datasets use only rows with status "ok".\n' +
          'Exit code 0 even when some files are bad (see the summary); 1 when the folder cannot be read.\n' +
          '\nExamples:\n  $ selfsup scan ./photos --out photos.arrow\n  $ selfsup scan ./photos --out photos.arrow --json\n',
      ),
  ).action((dir: string, opts: ScanCommandOptions) => {
    setResult(
      (async () => {
        const concurrency = assertInteger('--concurrency', Number(opts.concurrency), 1, 256);
        const maxPixels = assertInteger('--max-pixels', Number(opts.maxPixels), 1);
        if (opts.full && opts.previous) throw new UsageError('--full and --previous cannot be used together');
        const summary = await scanFolder(dir, {
          out: opts.out,
          previous: opts.full ? null : opts.previous,
          concurrency,
          maxPixels,
          includeHidden: Boolean(opts.hidden),
          progress: opts.progress && !opts.json && !opts.quiet,
        });
        output(opts, summary, formatScanSummary(summary));
        return 0;
      })(),
    );
  });
}
