/**
 * Backbone <-> TensorFlow.js LayersModel (`model.json` + `weights.bin`).
 *
 * The exported model is a plain tfjs-layers graph that reproduces the backbone
 * in inference mode: ZeroPadding2D + Conv2D('valid', no bias) where PyTorch pads
 * symmetrically, BatchNormalization(epsilon 1e-5), ReLU, Add, and a final
 * GlobalAveragePooling2D, so `model.predict(x)` returns the pooled features
 * [B, D]. Layer names are the torchvision module names (`layer1.0.conv1`), and
 * the selfsup config rides along in `userDefinedMetadata.selfsup`. Training
 * never goes through tfjs-layers (see src/backbones/ops.ts).
 */
import path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { type ConvNormLayout, resnetLayout } from '../backbones/resnet.js';
import type { Backbone, BackboneConfig } from '../backbones/types.js';
import { writeFileAtomic } from '../util/atomic.js';
import { InputError } from '../util/errors.js';
import { readRegularFile, readRegularTextFile, resolveInside } from '../util/files.js';
import { checkWeightValues } from './torchvision.js';

export const TFJS_MODEL_FILE = 'model.json';
export const TFJS_WEIGHTS_FILE = 'weights.bin';

type SymbolicTensor = tf.SymbolicTensor;

/** Builds the inference graph of a backbone config; layer names are torchvision module names. */
export function buildLayersModel(config: BackboneConfig, inputSize: number | null = null): tf.LayersModel {
  const layout = resnetLayout(config);
  const input = tf.input({ shape: [inputSize, inputSize, config.inputChannels], name: 'image' });
  const convNorm = (x: SymbolicTensor, l: ConvNormLayout) => {
    let h = x;
    if (l.padding > 0) {
      h = tf.layers.zeroPadding2d({ padding: l.padding, name: `${l.conv}.pad` }).apply(h) as SymbolicTensor;
    }
    h = tf.layers
      .conv2d({
        filters: l.outputChannels,
        kernelSize: l.kernelSize,
        strides: l.stride,
        padding: 'valid',
        useBias: false,
        name: l.conv,
      })
      .apply(h) as SymbolicTensor;
    return tf.layers
      .batchNormalization({ axis: -1, epsilon: 1e-5, momentum: 0.9, name: l.norm })
      .apply(h) as SymbolicTensor;
  };
  const relu = (x: SymbolicTensor, name: string) => tf.layers.reLU({ name }).apply(x) as SymbolicTensor;

  let h = relu(convNorm(input, layout.stem), 'relu');
  if (layout.maxPool) {
    const { size, stride, padding } = layout.maxPool;
    // After a ReLU, zero padding equals PyTorch's -inf padding for max pooling.
    h = tf.layers.zeroPadding2d({ padding, name: 'maxpool.pad' }).apply(h) as SymbolicTensor;
    h = tf.layers
      .maxPooling2d({ poolSize: size, strides: stride, padding: 'valid', name: 'maxpool' })
      .apply(h) as SymbolicTensor;
  }
  for (const block of layout.blocks) {
    let out = h;
    block.convs.forEach((l, i) => {
      out = convNorm(out, l);
      if (i < block.convs.length - 1) out = relu(out, `${block.name}.relu${i + 1}`);
    });
    const shortcut = block.downsample ? convNorm(h, block.downsample) : h;
    h = relu(
      tf.layers.add({ name: `${block.name}.add` }).apply([out, shortcut]) as SymbolicTensor,
      `${block.name}.relu`,
    );
  }
  const pooled = tf.layers.globalAveragePooling2d({ name: 'avgpool' }).apply(h) as SymbolicTensor;
  return tf.model({ inputs: input, outputs: pooled, name: `selfsup_${config.arch}` });
}

/** Where each backbone variable lives in the LayersModel: layer name and weight index. */
function layerSlot(name: string, kind: string): { layer: string; index: number } {
  const dot = name.lastIndexOf('.');
  const layer = name.slice(0, dot);
  const index = { conv: 0, 'bn-gamma': 0, 'bn-beta': 1, 'bn-mean': 2, 'bn-var': 3 }[kind];
  if (index === undefined) throw new Error(`no LayersModel slot for ${name} (${kind})`);
  return { layer, index };
}

/** A LayersModel holding copies of the backbone's weights (caller disposes it). */
export function backboneToLayersModel(backbone: Backbone, inputSize: number | null = null): tf.LayersModel {
  const model = buildLayersModel(backbone.config, inputSize);
  const byLayer = new Map<string, tf.Tensor[]>();
  for (const { name, variable, kind } of backbone.variables()) {
    const { layer, index } = layerSlot(name, kind);
    const list = byLayer.get(layer) ?? [];
    list[index] = variable;
    byLayer.set(layer, list);
  }
  for (const [layer, weights] of byLayer) model.getLayer(layer).setWeights(weights);
  return model;
}

/** Copies a LayersModel's weights (built by {@link buildLayersModel}) into the backbone's variables. */
export function layersModelToBackbone(model: tf.LayersModel, backbone: Backbone, file: string): void {
  for (const { name, variable, kind } of backbone.variables()) {
    const { layer, index } = layerSlot(name, kind);
    let weights: tf.Tensor[];
    try {
      weights = model.getLayer(layer).getWeights();
    } catch {
      throw new InputError(file, `has no layer "${layer}" (expected a selfsup ${backbone.config.arch} export)`);
    }
    const value = weights[index];
    if (!value || value.shape.join(',') !== variable.shape.join(',')) {
      throw new InputError(
        file,
        `layer "${layer}" weight ${index} has shape [${value?.shape.join(', ') ?? 'none'}], expected [${variable.shape.join(', ')}]`,
      );
    }
    checkWeightValues(value.dataSync(), name, kind, file);
    variable.assign(value);
  }
}

/** Writes `model.json` + `weights.bin` into `dir` (each file atomically). */
export async function writeLayersModel(
  model: tf.LayersModel,
  dir: string,
  metadata: Record<string, unknown>,
): Promise<void> {
  let artifacts: tf.io.ModelArtifacts | undefined;
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      artifacts = a;
      return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
    }),
  );
  if (!artifacts?.weightData || !artifacts.weightSpecs) throw new Error('tfjs returned no weights to save');
  const data = tf.io.CompositeArrayBuffer.join(artifacts.weightData);
  const modelJson = {
    format: 'layers-model',
    generatedBy: `TensorFlow.js tfjs-layers v${tf.version_layers}`,
    convertedBy: null,
    modelTopology: artifacts.modelTopology,
    weightsManifest: [{ paths: [`./${TFJS_WEIGHTS_FILE}`], weights: artifacts.weightSpecs }],
    userDefinedMetadata: metadata,
  };
  await writeFileAtomic(path.join(dir, TFJS_WEIGHTS_FILE), new Uint8Array(data));
  await writeFileAtomic(path.join(dir, TFJS_MODEL_FILE), JSON.stringify(modelJson));
}

export interface ReadLayersModel {
  model: tf.LayersModel;
  metadata: Record<string, unknown>;
}

/** Largest `model.json` read (a ResNet-50 topology is well under 1 MiB). */
export const MAX_MODEL_JSON_BYTES = 64 * 1024 * 1024;

const BYTES_PER_VALUE: Record<string, number> = { float32: 4, int32: 4, bool: 1 };

/** Bytes the weight specs of a manifest describe; a spec with a bad shape or dtype is an error naming it. */
function describedBytes(modelFile: string, specs: tf.io.WeightsManifestEntry[]): number {
  let total = 0;
  for (const spec of specs) {
    const name = typeof spec?.name === 'string' ? spec.name : '?';
    if (!Array.isArray(spec?.shape) || !spec.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new InputError(modelFile, `weight "${name}" has an invalid shape ${JSON.stringify(spec?.shape)}`);
    }
    const size = BYTES_PER_VALUE[spec.dtype];
    if (size === undefined) {
      throw new InputError(
        modelFile,
        `weight "${name}" has unsupported dtype ${JSON.stringify(spec.dtype)} (float32, int32, bool)`,
      );
    }
    total += spec.shape.reduce((a, b) => a * b, 1) * size;
    if (!Number.isSafeInteger(total)) throw new InputError(modelFile, `weight "${name}" is impossibly large`);
  }
  return total;
}

/**
 * Reads a `model.json` and its weight files into a LayersModel. Every path in
 * `weightsManifest[].paths` must be relative and resolve (symlinks followed) to
 * a regular file inside the model.json's folder; the files' total size must equal
 * what the manifest describes, checked before any weight file is read.
 */
export async function readLayersModel(modelFile: string): Promise<ReadLayersModel> {
  let json: tf.io.ModelJSON;
  const text = readRegularTextFile(modelFile, { maxBytes: MAX_MODEL_JSON_BYTES, what: 'tfjs model.json' });
  try {
    json = JSON.parse(text) as tf.io.ModelJSON;
  } catch (e) {
    throw new InputError(modelFile, `cannot read the tfjs model.json (${(e as Error).message})`);
  }
  if (!json?.modelTopology || !Array.isArray(json.weightsManifest)) {
    throw new InputError(modelFile, 'not a tfjs LayersModel model.json (no modelTopology / weightsManifest)');
  }
  const folder = path.dirname(modelFile);
  const specs: tf.io.WeightsManifestEntry[] = [];
  const files: Array<{ file: string; size: number }> = [];
  for (const group of json.weightsManifest) {
    if (!Array.isArray(group?.paths) || !Array.isArray(group?.weights)) {
      throw new InputError(modelFile, 'a weightsManifest entry needs "paths" and "weights" lists');
    }
    specs.push(...group.weights);
    for (const relative of group.paths) {
      const { file, stats } = resolveInside(folder, relative, modelFile, 'weights file');
      files.push({ file, size: stats.size });
    }
  }
  const needed = describedBytes(modelFile, specs);
  const held = files.reduce((sum, f) => sum + f.size, 0);
  if (held !== needed) {
    throw new InputError(modelFile, `weights hold ${held} bytes but model.json describes ${needed} (truncated?)`);
  }
  const buffers = files.map(({ file, size }) => {
    const bytes = readRegularFile(file, { maxBytes: size, what: 'weights file' });
    return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  });
  const data = tf.io.CompositeArrayBuffer.join(buffers);
  if (data.byteLength !== needed) {
    throw new InputError(modelFile, `weights changed while reading: ${data.byteLength} bytes, expected ${needed}`);
  }
  const model = await tf.loadLayersModel(
    tf.io.fromMemory({ modelTopology: json.modelTopology, weightSpecs: specs, weightData: data }),
  );
  return { model, metadata: (json.userDefinedMetadata ?? {}) as Record<string, unknown> };
}
