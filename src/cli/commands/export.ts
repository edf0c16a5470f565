/** `selfsup export`: a backbone (directory, run, .safetensors, PyTorch checkpoint or model.json) -> safetensors or tfjs. */
import type { Command } from 'commander';
import { initEngine, resolveBackendPreference } from '../../engine/backend.js';
import { exportBackbone } from '../../export/backbone-store.js';
import { invalidOption } from '../../util/errors.js';
import { type GlobalOptions, output, overwriteOption, withGlobalOptions } from '../common.js';

interface ExportOptions extends GlobalOptions {
  format: string;
  out: string;
  overwrite?: boolean;
  dtype: string;
  arch?: string;
}

export function registerExport(program: Command, setResult: (p: Promise<number>) => void): void {
  withGlobalOptions(
    program
      .command('export')
      .description(
        'write a backbone as torchvision-named safetensors or as a TensorFlow.js LayersModel, with manifest.json',
      )
      .argument(
        '<source>',
        'a run directory, a backbone directory, a .safetensors file, a PyTorch .pth/.ckpt (file.pth#key) or a tfjs model.json',
      )
      .requiredOption('--format <format>', 'safetensors | tfjs')
      .requiredOption(
        '--out <path>',
        'output directory (safetensors: backbone.safetensors + manifest.json; tfjs: model.json + weights.bin + manifest.json), ' +
          'or a file ending in .safetensors (then <name>.manifest.json is written beside it)',
      )
      .addOption(overwriteOption())
      .option('--dtype <dtype>', 'safetensors weight precision: F32 | F16 | BF16', 'F32')
      .option('--arch <name>', 'architecture, only needed for a foreign .safetensors file whose keys are ambiguous')
      .addHelpText(
        'after',
        [
          '',
          'Examples:',
          '  $ selfsup export runs/2026-11-28-simclr --format safetensors --out exports/simclr-r18',
          '  $ selfsup export runs/2026-11-28-simclr --format safetensors --out simclr-r18.safetensors --dtype F16',
          '  $ selfsup export backbones/r18 --format tfjs --out web/model',
          '',
          'In Python: model = torchvision.models.resnet18(); ',
          '  model.load_state_dict(safetensors.torch.load_file("exports/simclr-r18/backbone.safetensors"), strict=False)',
          '--out must be new or empty (a file: absent); an earlier export there is replaced only with --overwrite,',
          'and only what selfsup wrote. --out may not be, be inside or contain <source>.',
          'Exit codes: 0 ok, 1 unreadable source (the message names it), 2 bad options or --out.',
        ].join('\n'),
      ),
  ).action((source: string, opts: ExportOptions) => {
    setResult(
      (async () => {
        if (opts.format !== 'safetensors' && opts.format !== 'tfjs') {
          throw invalidOption('--format', '"safetensors" or "tfjs"', opts.format);
        }
        const dtype = opts.dtype.toUpperCase();
        if (dtype !== 'F32' && dtype !== 'F16' && dtype !== 'BF16') {
          throw invalidOption('--dtype', '"F32", "F16" or "BF16"', opts.dtype);
        }
        initEngine({ backend: resolveBackendPreference(opts.backend), quiet: true });
        const manifest = await exportBackbone(source, opts.format, opts.out, {
          dtype,
          arch: opts.arch,
          overwrite: opts.overwrite,
        });
        output(
          opts,
          { out: opts.out, format: opts.format, manifest },
          `exported ${manifest.architecture} (stem ${manifest.stem}, ${manifest.inputChannels} channel(s)) as ${opts.format} -> ${opts.out}`,
        );
        return 0;
      })(),
    );
  });
}
