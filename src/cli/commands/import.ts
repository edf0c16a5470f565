/** `selfsup import`: torchvision/timm ResNet weights (.safetensors or a torch.save checkpoint) -> a selfsup backbone directory. */
import type { Command } from 'commander';
import { initEngine, resolveBackendPreference } from '../../engine/backend.js';
import { loadBackbone, saveBackbone } from '../../export/backbone-store.js';
import { manifestExtras } from '../../export/manifest.js';
import { invalidOption } from '../../util/errors.js';
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
  key?: string;
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
        'turn torchvision/timm ResNet weights (.safetensors, or .pth/.pt/.ckpt/.bin written by torch.save; backbone only ' +
          'or with fc) into a selfsup backbone directory (backbone.safetensors + manifest.json)',
      )
      .argument(
        '<file>',
        'a .safetensors file with torchvision key names (conv1.weight, layer1.0.bn1.running_mean, ...), or a PyTorch ' +
          'checkpoint: a state_dict or a training checkpoint holding one (read without running any code from it)',
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
      .option(
        '--key <name>',
        'which backbone of a checkpoint holding several (e.g. encoder_q, momentum_backbone, teacher; see selfsup inspect)',
      )
      .addHelpText(
        'after',
        [
          '',
          'Examples:',
          '  # ImageNet weights saved in Python with safetensors.torch.save_file(model.state_dict(), "resnet50.safetensors")',
          '  $ selfsup import resnet50.safetensors --arch resnet50 --input-size 224 --out backbones/resnet50-imagenet',
          '  $ selfsup import cifar-resnet18.safetensors --arch resnet18 --stem small --out backbones/r18-cifar --json',
          '  # torchvision\'s own file, as downloaded by torchvision.models.resnet50(weights="IMAGENET1K_V2")',
          '  $ selfsup import resnet50-11ad3fa6.pth --out backbones/resnet50-imagenet',
          '  # a Lightning checkpoint of a contrastive method: the online backbone, not the momentum one',
          '  $ selfsup import epoch=99.ckpt --key backbone --out backbones/simclr',
          '',
          'Checkpoints are searched for ResNet backbones under any nested key (state_dict, model, teacher, ...)',
          'and prefix (module., backbone., encoder., _orig_mod., ...). Only tensors and dicts are rebuilt: a file',
          'that names any other Python global (os.system, builtins.eval, ...) is refused with exit code 1.',
          'The manifest records the preprocessing: ImageNet mean/std for 3 channels and 224 px for the ImageNet',
          'stem (32 px for the small stem) unless --mean/--std/--input-size say otherwise.',
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
          key: opts.key,
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
          const found = loaded.found;
          const foundNote = found
            ? `\nbackbone "${found.backboneKey}" of a torch.save ${found.container} file` +
              (found.ignored.length
                ? `; left out ${found.ignored.length} other tensor(s) (${found.ignored.slice(0, 3).join(', ')}${found.ignored.length > 3 ? ', ...' : ''})`
                : '')
            : '';
          output(
            opts,
            { out: opts.out, manifest, ...(found ? { found } : {}) },
            `imported ${manifest.architecture} (stem ${manifest.stem}, ${manifest.inputChannels} channel(s), ` +
              `${manifest.featureDim}-d features${fcNote}) -> ${opts.out}${foundNote}`,
          );
          return 0;
        } finally {
          loaded.backbone.dispose();
        }
      })(),
    );
  });
}
