/** Shared by the ONNX tests: trained-looking backbones and heads, NHWC <-> NCHW, onnxruntime sessions. */
import * as tf from '@tensorflow/tfjs';
import * as ort from 'onnxruntime-node';
import { createBackbone } from '../../src/backbones/registry.js';
import type { Backbone, Head, NamedVariable } from '../../src/backbones/types.js';
import { createRng } from '../../src/util/rng.js';
import { makeTensor } from '../backbones/fixture-weights.js';

/**
 * Trained-looking BatchNorm parameters and statistics (the formula fixtures of the
 * parity tests: the last BN of each block has a small gamma, as in trained ResNets).
 * Fresh ones are 0/1 and would hide a wrong fold.
 */
export function randomizeBatchNorm(variables: NamedVariable[]): void {
  for (const { name, variable, kind } of variables) {
    if (!kind.startsWith('bn-')) continue;
    tf.tidy(() => variable.assign(tf.tensor(makeTensor(name, variable.shape), variable.shape)));
  }
}

export function makeBackbone(
  arch: string,
  options: { stem: 'imagenet' | 'small'; inputChannels?: 1 | 3; widthMultiplier?: number },
  seed: number,
): Backbone {
  const backbone = createBackbone(arch, { ...options, seed });
  randomizeBatchNorm(backbone.variables());
  return backbone;
}

/** Uniform [0, 1) pixels, NHWC. */
export function randomPixels(shape: [number, number, number, number], seed: number): Float32Array {
  const rng = createRng(seed).derive('pixels');
  return Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.next());
}

/** [B, H, W, C] -> [B, C, H, W] on the host. */
export function nhwcToNchw(values: Float32Array, [b, h, w, c]: number[]): Float32Array {
  const out = new Float32Array(values.length);
  for (let n = 0; n < b; n++)
    for (let y = 0; y < h; y++)
      for (let x = 0; x < w; x++)
        for (let k = 0; k < c; k++) out[((n * c + k) * h + y) * w + x] = values[((n * h + y) * w + x) * c + k];
  return out;
}

/** selfsup's own eval-mode output for [0, 1] pixels: backbone features, or head outputs on them. */
export function selfsupOutput(
  backbone: Backbone,
  pixels: Float32Array,
  shape: [number, number, number, number],
  mean: number[],
  std: number[],
  head?: Head,
): Float32Array {
  return tf.tidy(() => {
    const x = tf.div(tf.sub(tf.tensor4d(pixels, shape), mean), std) as tf.Tensor4D;
    const features = backbone.features(x, false);
    return (head ? head.apply(features, false) : features).dataSync() as Float32Array;
  });
}

/** Runs an ONNX model on NHWC pixels; returns every output as a Float32Array. */
export async function runOnnx(
  model: Uint8Array | string,
  pixels: Float32Array,
  shape: [number, number, number, number],
): Promise<Record<string, Float32Array>> {
  const session = await ort.InferenceSession.create(model as Uint8Array);
  try {
    const [b, h, w, c] = shape;
    const feeds = { image: new ort.Tensor('float32', nhwcToNchw(pixels, shape), [b, c, h, w]) };
    const results = await session.run(feeds);
    const out: Record<string, Float32Array> = {};
    for (const [name, tensor] of Object.entries(results)) out[name] = tensor.data as Float32Array;
    return out;
  } finally {
    await session.release();
  }
}

export function maxAbsDifference(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}
