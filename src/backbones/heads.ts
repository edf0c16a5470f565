/**
 * Heads built from a list of block specs (lightly-style): `[{ linear: 512 },
 * { batchNorm: true }, { relu: true }, { linear: 128 }]` is SimCLR's projection
 * MLP. Blocks are numbered like a PyTorch `nn.Sequential`, so the variables of a
 * head named `projection` are `head.projection.0.weight`, `head.projection.0.bias`,
 * `head.projection.1.weight` (BN gamma), `head.projection.1.running_mean`, ...
 * Parameter-free blocks (relu, l2normalize) take an index but own no variables.
 *
 * Semantics follow PyTorch:
 * - linear: y = x W + b, W stored as a dense kernel [in, out] (torch `weight` is
 *   [out, in]: transpose on export); initialised like `nn.Linear`, uniform in
 *   ±1/sqrt(in) for weight and bias. With `normalizedWeight: true` every output
 *   column of W is divided by its L2 norm before use (`weight_norm` with the gain
 *   fixed at 1, DINO's last layer).
 * - batchNorm: `nn.BatchNorm1d` (eps 1e-5, momentum 0.1). Training normalises
 *   with the batch mean and biased variance and updates
 *   running = 0.9 running + 0.1 batch (unbiased variance for running_var);
 *   evaluation uses the running statistics.
 * - relu: max(x, 0).
 * - l2normalize: x / max(||x||, 1e-12) per row (`F.normalize`).
 */
import * as tf from '@tensorflow/tfjs';
import { invalidOption, UsageError } from '../util/errors.js';
import type { Rng } from '../util/rng.js';
import type { Head, HeadBlock, NamedVariable } from './types.js';

/** BatchNorm1d epsilon (PyTorch default). */
export const BATCH_NORM_EPSILON = 1e-5;
/** BatchNorm1d momentum in PyTorch's convention: weight of the new batch statistic. */
export const BATCH_NORM_MOMENTUM = 0.1;

/** One built block: maps [B, in] to [B, out]. */
interface BuiltBlock {
  readonly outputDim: number;
  readonly variables: NamedVariable[];
  apply(x: tf.Tensor2D, training: boolean): tf.Tensor2D;
}

/** A variable made from `init` without leaving the initial tensor behind (tf.variable copies a reference). */
function ownedVariable(init: () => tf.Tensor, trainable = true): tf.Variable {
  return tf.tidy(() => tf.variable(init(), trainable));
}

function uniformValues(count: number, bound: number, rng: Rng): Float32Array {
  const values = new Float32Array(count);
  for (let i = 0; i < count; i++) values[i] = rng.uniform(-bound, bound);
  return values;
}

function linearBlock(
  prefix: string,
  inputDim: number,
  outputDim: number,
  useBias: boolean,
  rng: Rng,
  normalizedWeight = false,
): BuiltBlock {
  const bound = 1 / Math.sqrt(inputDim);
  const kernel = ownedVariable(() =>
    tf.tensor2d(uniformValues(inputDim * outputDim, bound, rng), [inputDim, outputDim]),
  );
  const variables: NamedVariable[] = [{ name: `${prefix}.weight`, variable: kernel, trainable: true, kind: 'dense' }];
  let bias: tf.Variable | undefined;
  if (useBias) {
    bias = ownedVariable(() => tf.tensor1d(uniformValues(outputDim, bound, rng)));
    variables.push({ name: `${prefix}.bias`, variable: bias, trainable: true, kind: 'bias' });
  }
  return {
    outputDim,
    variables,
    apply(x) {
      // Weight-normalised: every output column of the [in, out] kernel scaled to norm 1.
      const weight = normalizedWeight
        ? tf.div(kernel, tf.maximum(tf.norm(kernel, 'euclidean', 0, true), 1e-12))
        : kernel;
      const y: tf.Tensor2D = tf.matMul(x, weight as tf.Tensor2D); // [B, out]
      return bias ? (tf.add(y, bias) as tf.Tensor2D) : y;
    },
  };
}

function batchNormBlock(prefix: string, dim: number): BuiltBlock {
  const gamma = ownedVariable(() => tf.ones([dim]));
  const beta = ownedVariable(() => tf.zeros([dim]));
  const runningMean = ownedVariable(() => tf.zeros([dim]), false);
  const runningVar = ownedVariable(() => tf.ones([dim]), false);
  return {
    outputDim: dim,
    variables: [
      { name: `${prefix}.weight`, variable: gamma, trainable: true, kind: 'bn-gamma' },
      { name: `${prefix}.bias`, variable: beta, trainable: true, kind: 'bn-beta' },
      { name: `${prefix}.running_mean`, variable: runningMean, trainable: false, kind: 'bn-mean' },
      { name: `${prefix}.running_var`, variable: runningVar, trainable: false, kind: 'bn-var' },
    ],
    apply(x, training) {
      let mean: tf.Tensor; // [dim]
      let variance: tf.Tensor; // [dim]
      if (training) {
        const batch = x.shape[0];
        if (batch < 2) {
          throw new UsageError(
            `BatchNorm1d (${prefix}) needs more than 1 value per channel when training, got batch size ${batch}`,
          );
        }
        const moments = tf.moments(x, 0);
        mean = moments.mean;
        variance = moments.variance; // biased, used to normalise
        const unbiased = tf.mul(variance, batch / (batch - 1));
        runningMean.assign(
          tf.add(tf.mul(runningMean, 1 - BATCH_NORM_MOMENTUM), tf.mul(mean, BATCH_NORM_MOMENTUM)) as tf.Tensor1D,
        );
        runningVar.assign(
          tf.add(tf.mul(runningVar, 1 - BATCH_NORM_MOMENTUM), tf.mul(unbiased, BATCH_NORM_MOMENTUM)) as tf.Tensor1D,
        );
      } else {
        mean = runningMean;
        variance = runningVar;
      }
      return tf.batchNorm(x, mean, variance, beta, gamma, BATCH_NORM_EPSILON) as tf.Tensor2D;
    },
  };
}

function reluBlock(dim: number): BuiltBlock {
  return { outputDim: dim, variables: [], apply: (x) => tf.relu(x) };
}

function l2NormalizeBlock(dim: number): BuiltBlock {
  return { outputDim: dim, variables: [], apply: (x) => l2Normalize(x) };
}

/** Row-wise x / max(||x||_2, 1e-12), as PyTorch's `F.normalize(x, dim=1)`. [B, D] -> [B, D]. */
export function l2Normalize(x: tf.Tensor2D): tf.Tensor2D {
  return tf.tidy(() => {
    const norm = tf.maximum(tf.norm(x, 'euclidean', 1, true), 1e-12); // [B, 1]
    return tf.div(x, norm) as tf.Tensor2D;
  });
}

function buildBlock(block: HeadBlock, index: number, prefix: string, dim: number, rng: Rng): BuiltBlock {
  if (block && typeof block === 'object') {
    if ('linear' in block) {
      if (!Number.isInteger(block.linear) || block.linear < 1) {
        throw invalidOption(`${prefix}.${index}.linear`, 'a positive integer', block.linear);
      }
      return linearBlock(`${prefix}.${index}`, dim, block.linear, block.bias ?? true, rng, block.normalizedWeight);
    }
    if ('batchNorm' in block) return batchNormBlock(`${prefix}.${index}`, dim);
    if ('relu' in block) return reluBlock(dim);
    if ('l2normalize' in block) return l2NormalizeBlock(dim);
  }
  throw invalidOption(
    `${prefix}.${index}`,
    'one of {linear: n}, {batchNorm: true}, {relu: true}, {l2normalize: true}',
    block,
  );
}

/** A head built from block specs; see the module comment for the semantics of each block. */
export interface BlockHead extends Head {
  readonly name: string;
  readonly inputDim: number;
  readonly blocks: readonly HeadBlock[];
}

/**
 * Builds a head [B, inputDim] -> [B, outputDim] from `blocks`, applied in order.
 * `name` prefixes the variable names (`head.<name>.<index>.<param>`).
 * Weights are drawn from `rng`, so the same seed gives the same head.
 */
export function createHead(blocks: HeadBlock[], inputDim: number, rng: Rng, name = 'head'): BlockHead {
  if (!Array.isArray(blocks) || blocks.length === 0) {
    throw invalidOption(`head.${name}`, 'a non-empty array of head blocks', blocks);
  }
  if (!Number.isInteger(inputDim) || inputDim < 1) {
    throw invalidOption(`head.${name} input size`, 'a positive integer', inputDim);
  }
  const prefix = `head.${name}`;
  const built: BuiltBlock[] = [];
  let dim = inputDim;
  for (let i = 0; i < blocks.length; i++) {
    const block = buildBlock(blocks[i], i, prefix, dim, rng);
    built.push(block);
    dim = block.outputDim;
  }
  const variables = built.flatMap((b) => b.variables);
  let disposed = false;
  return {
    name,
    inputDim,
    blocks: blocks.map((b) => ({ ...b })),
    outputDim: dim,
    variables: () => variables.slice(),
    apply(x, training) {
      if (x.shape[1] !== inputDim) {
        throw new UsageError(`Head ${name} expects [B, ${inputDim}] features but received [${x.shape.join(', ')}]`);
      }
      return tf.tidy(() => {
        let y = x;
        for (const block of built) y = block.apply(y, training);
        return y;
      });
    },
    dispose() {
      if (disposed) return;
      disposed = true;
      for (const v of variables) v.variable.dispose();
    },
  };
}

/**
 * A pretext task's head `name` (`projection`, `prediction`, `classifier`): its
 * variables are `head.<name>.*` and its weights come from the run's generator
 * derived for ('head', name), so adding a head never changes another's weights.
 */
export function createNamedHead(name: string, blocks: HeadBlock[], inputDim: number, rng: Rng): BlockHead {
  return createHead(blocks, inputDim, rng.derive('head', name), name);
}

/** How `mlpBlocks` builds its layers; every field defaults to the plain MLP. */
export interface MlpBlockOptions {
  /** Biases on the hidden linear layers (default true; false where a BatchNorm follows). */
  hiddenBias?: boolean;
  /** A bias on the output linear layer (default true). */
  outputBias?: boolean;
  /** A BatchNorm after the output linear layer (default false; SimSiam's projector). */
  outputBatchNorm?: boolean;
}

/**
 * A common MLP: linear -> BatchNorm -> ReLU, repeated per hidden size, then a linear output.
 * SimCLR's projector is `mlpBlocks([h], k, { hiddenBias: false })`; Barlow Twins' is
 * `mlpBlocks([h, h], k, { hiddenBias: false, outputBias: false })`.
 */
export function mlpBlocks(hiddenDims: number[], outputDim: number, options: MlpBlockOptions = {}): HeadBlock[] {
  const { hiddenBias = true, outputBias = true, outputBatchNorm = false } = options;
  const linear = (size: number, bias: boolean): HeadBlock => (bias ? { linear: size } : { linear: size, bias: false });
  const blocks: HeadBlock[] = [];
  for (const hidden of hiddenDims) blocks.push(linear(hidden, hiddenBias), { batchNorm: true }, { relu: true });
  blocks.push(linear(outputDim, outputBias));
  if (outputBatchNorm) blocks.push({ batchNorm: true });
  return blocks;
}
