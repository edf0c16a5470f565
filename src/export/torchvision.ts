/**
 * torchvision state_dict <-> selfsup backbone variables.
 *
 * | selfsup variable            | torchvision key                   | layout                      |
 * |-----------------------------|-----------------------------------|-----------------------------|
 * | conv kernel [kh, kw, in, out] | `*.weight` (conv)                | OIHW: transpose [3, 2, 0, 1] |
 * | BN gamma/beta/mean/var [C]  | `*.weight/bias/running_mean/var`  | as is                       |
 * | (a counter)                 | `*.num_batches_tracked`           | I64 scalar                  |
 * | dense kernel [in, out]      | `fc.weight` [out, in], `fc.bias`  | transpose                   |
 */
import * as tf from '@tensorflow/tfjs';
import type { Backbone, BackboneConfig, ResNetArch } from '../backbones/types.js';
import { InputError } from '../util/errors.js';
import { describeNonFinite } from '../util/finite.js';
import {
  entryToFloat32,
  type SafetensorsContents,
  type SafetensorsDtype,
  type SafetensorsInput,
} from './safetensors.js';

/** A classifier layer as torchvision stores it (`fc`), in tfjs layout: weight [in, out]. */
export interface DenseWeights {
  weight: Float32Array; // [inputDim, outputDim]
  bias: Float32Array; // [outputDim]
  inputDim: number;
  outputDim: number;
}

/** Transposes a row-major array of `shape` by `permutation` (like tf.transpose, on the host). */
export function transposeHost(values: Float32Array, shape: number[], permutation: number[]): Float32Array {
  const rank = shape.length;
  const outShape = permutation.map((p) => shape[p]);
  const inStrides = new Array<number>(rank).fill(1);
  for (let i = rank - 2; i >= 0; i--) inStrides[i] = inStrides[i + 1] * shape[i + 1];
  const strides = permutation.map((p) => inStrides[p]); // input stride of each output axis
  const out = new Float32Array(values.length);
  const index = new Array<number>(rank).fill(0);
  let source = 0;
  for (let o = 0; o < out.length; o++) {
    out[o] = values[source];
    for (let axis = rank - 1; axis >= 0; axis--) {
      index[axis]++;
      source += strides[axis];
      if (index[axis] < outShape[axis]) break;
      source -= strides[axis] * outShape[axis];
      index[axis] = 0;
    }
  }
  return out;
}

/** conv kernel HWIO -> OIHW and back. */
export const HWIO_TO_OIHW = [3, 2, 0, 1];
export const OIHW_TO_HWIO = [2, 3, 1, 0];

export interface StateDictOptions {
  /** Floating dtype of the weights (default F32; F16/BF16 halve the size but round). */
  dtype?: 'F32' | 'F16' | 'BF16';
  /** Add `*.num_batches_tracked` (I64) for every BatchNorm, like torchvision's state_dict. Default true. */
  numBatchesTracked?: boolean;
  /** A classifier to store as `fc.weight`/`fc.bias`. */
  fc?: DenseWeights;
}

/** The backbone's variables as torchvision-named, torchvision-laid-out tensors. */
export function backboneToStateDict(
  backbone: Backbone,
  options: StateDictOptions = {},
): Record<string, SafetensorsInput> {
  const dtype = options.dtype ?? 'F32';
  const tracked = BigInt((backbone as { numBatchesTracked?: number }).numBatchesTracked ?? 0);
  const out: Record<string, SafetensorsInput> = {};
  for (const { name, variable, kind } of backbone.variables()) {
    const values = variable.dataSync() as Float32Array;
    if (kind === 'conv') {
      const shape = variable.shape; // [kh, kw, in, out]
      out[name] = {
        dtype,
        shape: HWIO_TO_OIHW.map((p) => shape[p]),
        values: transposeHost(values, shape, HWIO_TO_OIHW),
      };
    } else {
      out[name] = { dtype, shape: [...variable.shape], values: Float32Array.from(values) };
    }
    if (kind === 'bn-var' && options.numBatchesTracked !== false) {
      const prefix = name.slice(0, -'running_var'.length);
      out[`${prefix}num_batches_tracked`] = { dtype: 'I64', shape: [], values: BigInt64Array.of(tracked) };
    }
  }
  if (options.fc) {
    const { weight, bias, inputDim, outputDim } = options.fc;
    out['fc.weight'] = {
      dtype,
      shape: [outputDim, inputDim],
      values: transposeHost(weight, [inputDim, outputDim], [1, 0]),
    };
    out['fc.bias'] = { dtype, shape: [outputDim], values: Float32Array.from(bias) };
  }
  return out;
}

/** What a torchvision state dict says about the network that made it. */
export interface InferredConfig {
  arch?: ResNetArch;
  stem?: BackboneConfig['stem'];
  inputChannels?: number;
  widthMultiplier?: number;
}

/** Reads architecture, stem, input channels and width from the keys and the conv1 shape. */
export function inferConfig(contents: SafetensorsContents): InferredConfig {
  const names = [...contents.tensors.keys()];
  const blocks = (stage: number) =>
    new Set(names.filter((n) => n.startsWith(`layer${stage}.`)).map((n) => n.split('.')[1])).size;
  const bottleneck = names.some((n) => /^layer\d+\.\d+\.conv3\.weight$/.test(n));
  let arch: ResNetArch | undefined;
  const layout = [1, 2, 3, 4].map(blocks).join(',');
  if (!bottleneck && layout === '2,2,2,2') arch = 'resnet18';
  else if (!bottleneck && layout === '3,4,6,3') arch = 'resnet34';
  else if (bottleneck && layout === '3,4,6,3') arch = 'resnet50';
  const conv1 = contents.tensors.get('conv1.weight');
  if (conv1?.shape.length !== 4) return { arch };
  const [out, input, kh] = conv1.shape;
  return {
    arch,
    stem: kh === 7 ? 'imagenet' : kh === 3 ? 'small' : undefined,
    inputChannels: input,
    widthMultiplier: out / 64,
  };
}

/**
 * Copies torchvision-named tensors into the backbone's variables (OIHW -> HWIO
 * for convs). Every backbone variable must be present with the right shape;
 * `fc.*` is returned (tfjs layout), `num_batches_tracked` is read into the
 * backbone's counter; any other key is an error naming it.
 */
export function loadStateDict(backbone: Backbone, contents: SafetensorsContents, file: string): { fc?: DenseWeights } {
  const tensors = contents.tensors;
  const expected = new Set(backbone.variables().map((v) => v.name));
  const missing = [...expected].filter((n) => !tensors.has(n));
  const unexpected = [...tensors.keys()].filter(
    (n) => !expected.has(n) && !n.endsWith('.num_batches_tracked') && n !== 'fc.weight' && n !== 'fc.bias',
  );
  const arch = backbone.config.arch;
  if (missing.length > 0 || unexpected.length > 0) {
    const inferred = inferConfig(contents).arch;
    const parts = [];
    if (missing.length) parts.push(`missing ${missing.length} key(s) of ${arch}: ${missing.slice(0, 5).join(', ')}`);
    if (unexpected.length) parts.push(`unexpected key(s): ${unexpected.slice(0, 5).join(', ')}`);
    const hint = inferred && inferred !== arch ? ` (the keys look like ${inferred})` : '';
    throw new InputError(file, `does not match a torchvision ${arch}${hint}: ${parts.join('; ')}`);
  }
  // Check every tensor (shape, dtype, finite values) before touching any variable; then convert and
  // assign one at a time, so only one converted copy exists at once (a 100 MB checkpoint stays near its size).
  for (const { name, variable, kind } of backbone.variables()) {
    const entry = tensors.get(name)!;
    checkFloat(entry.dtype, name, file);
    const want = kind === 'conv' ? HWIO_TO_OIHW.map((p) => variable.shape[p]) : variable.shape;
    if (entry.shape.join(',') !== want.join(',')) {
      throw new InputError(
        file,
        `tensor "${name}" has shape [${entry.shape.join(', ')}] but ${arch} (${describe(backbone.config)}) needs [${want.join(', ')}]`,
      );
    }
    checkWeightValues(entryToFloat32(entry), name, kind, file);
  }
  for (const { name, variable, kind } of backbone.variables()) {
    const entry = tensors.get(name)!;
    const values = entryToFloat32(entry);
    const data = kind === 'conv' ? transposeHost(values, entry.shape, OIHW_TO_HWIO) : values;
    const value = tf.tensor(data, variable.shape, 'float32');
    variable.assign(value);
    value.dispose();
  }
  const tracked = tensors.get('bn1.num_batches_tracked');
  if (tracked?.dtype === 'I64') {
    (backbone as { numBatchesTracked?: number }).numBatchesTracked = Number(new BigInt64Array(tracked.bytes.buffer)[0]);
  }
  const weight = tensors.get('fc.weight');
  const bias = tensors.get('fc.bias');
  if (!weight) return {};
  checkFloat(weight.dtype, 'fc.weight', file);
  if (weight.shape.length !== 2 || weight.shape[1] !== backbone.featureDim) {
    throw new InputError(
      file,
      `fc.weight has shape [${weight.shape.join(', ')}], expected [K, ${backbone.featureDim}]`,
    );
  }
  const [outputDim, inputDim] = weight.shape;
  const weightValues = entryToFloat32(weight);
  checkWeightValues(weightValues, 'fc.weight', 'dense', file);
  const biasValues = bias ? entryToFloat32(bias) : new Float32Array(outputDim);
  checkWeightValues(biasValues, 'fc.bias', 'dense', file);
  if (biasValues.length !== outputDim)
    throw new InputError(file, `fc.bias has ${biasValues.length} values, expected ${outputDim}`);
  return {
    fc: {
      weight: transposeHost(weightValues, [outputDim, inputDim], [1, 0]),
      bias: biasValues,
      inputDim,
      outputDim,
    },
  };
}

/**
 * Weights must be finite, and BatchNorm running variances not negative; the
 * error names the tensor (torchvision name) and the first bad value.
 */
export function checkWeightValues(values: ArrayLike<number>, name: string, kind: string, file: string): void {
  const problem = describeNonFinite(values);
  if (problem) throw new InputError(file, `tensor "${name}" ${problem}: these weights cannot be used`);
  if (kind === 'bn-var') {
    for (let i = 0; i < values.length; i++) {
      if (values[i] < 0) {
        throw new InputError(file, `tensor "${name}" holds a negative variance (${values[i]} at index ${i})`);
      }
    }
  }
}

function checkFloat(dtype: SafetensorsDtype, name: string, file: string): void {
  if (dtype !== 'F32' && dtype !== 'F16' && dtype !== 'BF16') {
    throw new InputError(file, `tensor "${name}" is ${dtype}; weights must be F32, F16 or BF16`);
  }
}

function describe(config: BackboneConfig): string {
  return `stem ${config.stem}, ${config.inputChannels} input channel(s), width x${config.widthMultiplier}`;
}
