/** `selfsup import`: a torchvision ResNet .safetensors file -> a selfsup backbone directory. */
import type { Command } from 'commander';
import { initEngine, resolveBackendPreference } from '../../engine/backend.js';
import { loadBackbone, saveBackbone } from '../../export/backbone-store.js';
import { manifestExtras } from '../../export/manifest.js';
import { invalidOption, UsageError } from '../../util/errors.js';
import { checkOutputDir, type OutputDirOptions } from '../../util/output-dir.js';
import { type GlobalOptions, output, overwriteOption, withGlobalOptions } from '../common.js';

interface ImportOptions extends GlobalOptions {
  arch?: string;
  stem?: string;
  channels?: string;
  width?: string;
  out: string;
  overwrite?: boolean;
  inputSize?: string;
  mean?: string;
  std?: string;
  keepFc: boolean;
}

/** Parses "0.485,0.456,0.406" into numbers; names the option on error. */
export function parseNumberList(key: string, text: string | undefined): number[] | undefined {
  if (text === undefined) return undefined;
  const values = text.split(',').map((part) => Number(part.trim()));
  if (values.length === 0 || values.some((v) => !Number.isFinite(v))) {
    throw invalidOption(key, 'comma-separated numbers like 0.485,0.456,0.406', text);
  }
  return values;
}

/** Parses a positive integer option; names the option on error. */
export function parsePositiveInteger(key: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!Number.isInteger(value) || value <= 0) throw invalidOption(key, 'a positive integer', text);
  return value;
}

export function registerImport(program: Command, setResult: (p: Promise<number>) => void): void {
  withGlobalOptions(
    program
      .command('import')
      .description(
        'turn torchvision ResNet weights (.safetensors; backbone only or with fc) into a selfsup backbone directory ' +
          '(backbone.safetensors + manifest.json)',
      )
      .argument(
        '<file>',
        'a .safetensors file with torchvision key names (conv1.weight, layer1.0.bn1.running_mean, ...)',
      )
      .requiredOption(
        '--out <dir>',
        'backbone directory to write: new or empty (or an earlier backbone, with --overwrite)',
      )
      .addOption(overwriteOption())
      .option('--arch <name>', 'resnet18 | resnet34 | resnet50 (checked against the keys; inferred when omitted)')
      .option('--stem <stem>', 'imagenet | small (inferred from conv1 when omitted)')
      .option('--channels <n>', '1 | 3 input channels (inferred from conv1 when omitted)')
      .option('--width <multiplier>', 'width multiplier (inferred from conv1 when omitted)')
      .option('--input-size <px>', 'input size to record in the manifest (e.g. 224)')
      .option('--mean <list>', 'per-channel mean to record (default ImageNet for 3 channels, 0.5 for 1)')
      .option('--std <list>', 'per-channel std to record (default ImageNet for 3 channels, 0.5 for 1)')
      .option('--no-keep-fc', 'drop a torchvision fc layer instead of storing it beside the backbone')
      .addHelpText(
        'after',
        [
          '',
          'Examples:',
          '  # ImageNet weights saved in Python with safetensors.torch.save_file(model.state_dict(), "resnet50.safetensors")',
          '  $ selfsup import resnet50.safetensors --arch resnet50 --input-size 224 --out backbones/resnet50-imagenet',
          '  $ selfsup import cifar-resnet18.safetensors --arch resnet18 --stem small --out backbones/r18-cifar --json',
          '',
          'Exit codes: 0 ok, 1 unreadable or mismatching file (the message names it), 2 bad options or --out.',
        ].join('\n'),
      ),
  ).action((file: string, opts: ImportOptions) => {
    setResult(
      (async () => {
        const channels = parsePositiveInteger('--channels', opts.channels);
        if (channels !== undefined && channels !== 1 && channels !== 3)
          throw invalidOption('--channels', '1 or 3', opts.channels);
        const width = opts.width === undefined ? undefined : Number(opts.width);
        if (width !== undefined && !(width > 0)) throw invalidOption('--width', 'a positive number', opts.width);
        if (opts.stem !== undefined && opts.stem !== 'imagenet' && opts.stem !== 'small') {
          throw invalidOption('--stem', '"imagenet" or "small"', opts.stem);
        }
        if (!file.endsWith('.safetensors')) throw new UsageError(`${file}: import reads .safetensors files`);
        const out: OutputDirOptions = {
          kind: 'backbone',
          overwrite: opts.overwrite,
          inputs: [{ path: file, option: '<file>' }],
        };
        checkOutputDir(opts.out, out);
        initEngine({ backend: resolveBackendPreference(opts.backend), quiet: true });
        const loaded = await loadBackbone(file, {
          arch: opts.arch,
          stem: opts.stem as 'imagenet' | 'small' | undefined,
          inputChannels: channels as 1 | 3 | undefined,
          widthMultiplier: width,
        });
        try {
          const extras = {
            ...manifestExtras(loaded.manifest),
            inputSize: parsePositiveInteger('--input-size', opts.inputSize) ?? loaded.manifest.inputSize ?? undefined,
            mean: parseNumberList('--mean', opts.mean) ?? loaded.manifest.mean,
            std: parseNumberList('--std', opts.std) ?? loaded.manifest.std,
          };
          const manifest = await saveBackbone(loaded.backbone, opts.out, extras, {
            fc: opts.keepFc ? loaded.fc : undefined,
            output: out,
          });
          const fcNote = loaded.fc ? (opts.keepFc ? `, fc (${loaded.fc.outputDim} classes) kept` : ', fc dropped') : '';
          output(
            opts,
            { out: opts.out, manifest },
            `imported ${manifest.architecture} (stem ${manifest.stem}, ${manifest.inputChannels} channel(s), ` +
              `${manifest.featureDim}-d features${fcNote}) -> ${opts.out}`,
          );
          return 0;
        } finally {
          loaded.backbone.dispose();
        }
      })(),
    );
  });
}
