/**
 * `selfsup export`: a backbone (directory, run, .safetensors, PyTorch checkpoint or model.json) -> safetensors,
 * tfjs or ONNX; a finetuned model folder -> ONNX (logits).
 */
import type { Command } from 'commander';
import { initEngine, resolveBackendPreference } from '../../engine/backend.js';
import { exportBackbone } from '../../export/backbone-store.js';
import { exportClassifierOnnx, isClassifierFolder } from '../../finetune/export-onnx.js';
import { invalidOption, UsageError } from '../../util/errors.js';
import { type GlobalOptions, output, overwriteOption, withGlobalOptions } from '../common.js';

interface ExportOptions extends GlobalOptions {
  format: string;
  out: string;
  overwrite?: boolean;
  dtype: string;
  arch?: string;
  softmax?: boolean;
}

export function registerExport(program: Command, setResult: (p: Promise<number>) => void): void {
  withGlobalOptions(
    program
      .command('export')
      .description(
        'write a backbone as torchvision-named safetensors, a TensorFlow.js LayersModel or ONNX, with manifest.json; ' +
          'a finetuned classifier as ONNX',
      )
      .argument(
        '<source>',
        'a run directory, a backbone directory, a .safetensors file, a PyTorch .pth/.ckpt (file.pth#key), a tfjs model.json, ' +
          'or (ONNX only) a model folder written by `selfsup finetune`',
      )
      .requiredOption('--format <format>', 'safetensors | tfjs | onnx')
      .requiredOption(
        '--out <path>',
        'output directory (safetensors: backbone.safetensors + manifest.json; tfjs: model.json + weights.bin + manifest.json; ' +
          'onnx: model.onnx + manifest.json), or a file ending in .safetensors or .onnx (then <name>.manifest.json is written beside it)',
      )
      .addOption(overwriteOption())
      .option('--dtype <dtype>', 'weight precision: F32 | F16 | BF16 (safetensors); F32 | F16 (onnx)', 'F32')
      .option('--softmax', 'ONNX of a finetuned classifier: also output probabilities (softmax of the logits)')
      .option('--arch <name>', 'architecture, only needed for a foreign .safetensors file whose keys are ambiguous')
      .addHelpText(
        'after',
        [
          '',
          'Examples:',
          '  $ selfsup export runs/2026-11-28-simclr --format safetensors --out exports/simclr-r18',
          '  $ selfsup export runs/2026-11-28-simclr --format safetensors --out simclr-r18.safetensors --dtype F16',
          '  $ selfsup export backbones/r18 --format tfjs --out web/model',
          '  $ selfsup export runs/2026-11-28-simclr --format onnx --out exports/simclr-r18.onnx',
          '  $ selfsup export models/probe --format onnx --softmax --dtype F16 --out exports/probe.onnx',
          '',
          'In Python: model = torchvision.models.resnet18(); ',
          '  model.load_state_dict(safetensors.torch.load_file("exports/simclr-r18/backbone.safetensors"), strict=False)',
          'ONNX: opset 13, input "image" float32 [batch, C, H, W] with pixels in [0, 1] (RGB or gray), normalised',
          '  inside the model; output "features" (backbone) or "logits" (+ "probabilities" with --softmax).',
          '  A finetuned model folder gives its classifier; point at <model>/backbone for its features.',
          '  See docs/deploy.md.',
          '--out must be new or empty (a file: absent); an earlier export there is replaced only with --overwrite,',
          'and only what selfsup wrote. --out may not be, be inside or contain <source>.',
          'Exit codes: 0 ok, 1 unreadable source (the message names it), 2 bad options or --out.',
        ].join('\n'),
      ),
  ).action((source: string, opts: ExportOptions) => {
    setResult(
      (async () => {
        if (opts.format !== 'safetensors' && opts.format !== 'tfjs' && opts.format !== 'onnx') {
          throw invalidOption('--format', '"safetensors", "tfjs" or "onnx"', opts.format);
        }
        const dtype = opts.dtype.toUpperCase();
        if (dtype !== 'F32' && dtype !== 'F16' && dtype !== 'BF16') {
          throw invalidOption('--dtype', '"F32", "F16" or "BF16"', opts.dtype);
        }
        const classifier = opts.format === 'onnx' && isClassifierFolder(source);
        if (opts.softmax && !classifier) {
          throw new UsageError(
            '--softmax applies to --format onnx of a finetuned model folder (one with classifier.json)',
          );
        }
        if (opts.format === 'onnx' && dtype === 'BF16')
          throw invalidOption('--dtype (onnx)', '"F32" or "F16"', opts.dtype);
        initEngine({ backend: resolveBackendPreference(opts.backend), quiet: true });
        const manifest = classifier
          ? await exportClassifierOnnx(source, opts.out, {
              softmax: opts.softmax,
              weights: dtype === 'F16' ? 'float16' : 'float32',
              overwrite: opts.overwrite,
            })
          : await exportBackbone(source, opts.format, opts.out, {
              dtype,
              arch: opts.arch,
              overwrite: opts.overwrite,
            });
        output(
          opts,
          { out: opts.out, format: opts.format, manifest },
          `exported ${classifier ? `a ${manifest.fcClasses}-class classifier on ` : ''}${manifest.architecture} ` +
            `(stem ${manifest.stem}, ${manifest.inputChannels} channel(s)) as ${opts.format} -> ${opts.out}`,
        );
        return 0;
      })(),
    );
  });
}
