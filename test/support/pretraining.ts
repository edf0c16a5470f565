/**
 * Stand-ins for the training-loop tests (the backbone is test/support's tiny
 * one): a real 4-way rotation task implementing PretextTask, a
 * generated in-memory image source and a simple loader that follows the
 * LoaderOptions contract (seeded order, startBatch, subset, dropLast).
 */
import * as tf from '@tensorflow/tfjs';
import type { PretextTask } from '../../pretext-tasks/types.js';
import type { Head, NamedVariable } from '../../src/backbones/types.js';
import type { Batch, ImageSource, LoaderOptions, PipelineSpec, RawImage } from '../../src/data/types.js';
import type { PretrainRecipe } from '../../src/recipes/pretrain-schema.js';
import { PRETRAIN_SCHEMA } from '../../src/recipes/pretrain-schema.js';
import { validate } from '../../src/recipes/schema.js';
import type { BatchLoader, TrainComponents } from '../../src/train/components.js';
import { createRng, type Rng } from '../../src/util/rng.js';
import { createTinyBackbone } from './tiny-backbone.js';

function heNormal(rng: Rng, shape: number[], fanIn: number): tf.Variable {
  const n = shape.reduce((a, b) => a * b, 1);
  const values = new Float32Array(n);
  const std = Math.sqrt(2 / fanIn);
  for (let i = 0; i < n; i++) values[i] = rng.normal() * std;
  return tf.variable(tf.tensor(values, shape), true);
}

function constant(shape: number[], value: number, trainable: boolean): tf.Variable {
  return tf.variable(tf.fill(shape, value), trainable);
}

/** A linear head: [B, D] -> [B, K]. */
export class LinearHead implements Head {
  private readonly kernel: tf.Variable;
  private readonly bias: tf.Variable;
  constructor(
    inputDim: number,
    readonly outputDim: number,
    rng: Rng,
  ) {
    this.kernel = heNormal(rng, [inputDim, outputDim], inputDim);
    this.bias = constant([outputDim], 0, true);
  }
  variables(): NamedVariable[] {
    return [
      { name: 'fc.weight', variable: this.kernel, trainable: true, kind: 'dense' },
      { name: 'fc.bias', variable: this.bias, trainable: true, kind: 'bias' },
    ];
  }
  apply(x: tf.Tensor2D, _training = false): tf.Tensor2D {
    return tf.tidy(() => x.matMul(this.kernel as tf.Tensor2D).add(this.bias));
  }
  dispose(): void {
    this.kernel.dispose();
    this.bias.dispose();
  }
}

export interface TinyRotationOptions {
  /** Multiplies the loss (used to force divergence in a test). */
  lossScale: number;
  /** Steps after which the loss becomes NaN (0 = never), counted per task instance. */
  nanAfterSteps: number;
  /** Report collapsed embeddings (every row the same) to exercise the collapse alarm. */
  collapsedEmbeddings: boolean;
}

/** 4-way rotation prediction on all four rotations of each image; a new instance per run. */
export function makeTinyRotationTask(): PretextTask<TinyRotationOptions, { classifier: LinearHead }> {
  let calls = 0;
  return {
    id: 'tiny-rotation',
    paper: 'test stand-in (Gidaris et al., 2018): predict which of 4 rotations was applied',
    defaults: { lossScale: 1, nanAfterSteps: 0, collapsedEmbeddings: false },
    optionDocs: {
      lossScale: 'loss multiplier',
      nanAfterSteps: 'NaN loss after this many steps',
      collapsedEmbeddings: 'report constant embeddings',
    },
    validate(options: unknown): TinyRotationOptions {
      const merged = {
        lossScale: 1,
        nanAfterSteps: 0,
        collapsedEmbeddings: false,
        ...(options as object),
      } as TinyRotationOptions;
      if (typeof merged.lossScale !== 'number') throw new Error('lossScale must be a number');
      return merged;
    },
    views(_options, input): PipelineSpec[] {
      return [[{ op: 'normalize', mean: input.mean, std: input.std }]];
    },
    createHeads(_options, featureDim, rng) {
      return { classifier: new LinearHead(featureDim, 4, rng) };
    },
    headModules(heads) {
      return { classifier: heads.classifier };
    },
    step(ctx, options) {
      const x = ctx.views[0] as tf.Tensor4D;
      const rotated = tf.concat([
        x,
        tf.reverse(tf.transpose(x, [0, 2, 1, 3]), 1),
        tf.reverse(x, [1, 2]),
        tf.transpose(tf.reverse(x, 1), [0, 2, 1, 3]),
      ]) as tf.Tensor4D;
      const b = x.shape[0];
      const labels = tf.tensor1d(
        Array.from({ length: 4 * b }, (_, i) => Math.floor(i / b)),
        'int32',
      );
      const features = ctx.backbone.features(rotated, ctx.training);
      const logits = ctx.heads.classifier.apply(features, ctx.training);
      const oneHot = tf.oneHot(labels, 4);
      calls++;
      const poison = options.nanAfterSteps > 0 && calls > options.nanAfterSteps ? Number.NaN : 1;
      const loss = tf.losses.softmaxCrossEntropy(oneHot, logits).mul(options.lossScale * poison) as tf.Scalar;
      const accuracy = logits.argMax(1).equal(labels).cast('float32').mean() as tf.Scalar;
      const embeddings = options.collapsedEmbeddings ? tf.onesLike(features).add(features.mul(1e-7)) : features;
      return { loss, metrics: { accuracy }, embeddings: embeddings as tf.Tensor2D };
    },
  };
}

/**
 * `count` generated images, size x size, 1 channel: a brightness gradient (top
 * bright) with a random slope, plus noise; labels alternate 0/1 and class 1 adds
 * vertical stripes.
 */
export function makeSource(count: number, size = 8, seed = 1): ImageSource {
  const rng = createRng(seed);
  const images: RawImage[] = [];
  const labels = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const data = new Uint8Array(size * size);
    const slope = rng.uniform(10, 30);
    labels[i] = i % 2;
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const stripes = labels[i] === 1 && x % 2 === 0 ? 60 : 0;
        const value = 220 - slope * y + stripes + rng.normal() * 8;
        data[y * size + x] = Math.max(0, Math.min(255, Math.round(value)));
      }
    }
    images.push({ data, width: size, height: size, channels: 1 });
  }
  return {
    size: count,
    labels,
    classNames: ['plain', 'striped'],
    load: async (index) => images[index],
    describe: (index) => `generated#${index}`,
  };
}

function applyPipeline(image: RawImage, pipeline: PipelineSpec): Float32Array {
  const out = new Float32Array(image.data.length);
  for (let i = 0; i < out.length; i++) out[i] = image.data[i] / 255;
  for (const step of pipeline) {
    if (step.op === 'normalize') {
      const c = image.channels;
      for (let i = 0; i < out.length; i++) out[i] = (out[i] - step.mean[i % c]) / step.std[i % c];
    } else if ((step.op === 'resize' || step.op === 'centerCrop') && step.size === image.width) {
      // already that size
    } else {
      throw new Error(`test loader: unsupported step ${step.op}`);
    }
  }
  return out;
}

/** A loader following the LoaderOptions contract, in process. */
export function simpleLoader(source: ImageSource, options: LoaderOptions): BatchLoader {
  const base = options.subset ? Array.from(options.subset) : Array.from({ length: source.size }, (_, i) => i);
  const order =
    options.shuffle === false
      ? base
      : Array.from(createRng(options.seed).derive('epoch', options.epoch).permutation(base.length), (i) => base[i]);
  const batches: number[][] = [];
  for (let start = 0; start < order.length; start += options.batchSize) {
    const indices = order.slice(start, start + options.batchSize);
    if (indices.length < options.batchSize && options.dropLast !== false) break;
    batches.push(indices);
  }
  return {
    async *[Symbol.asyncIterator](): AsyncIterator<Batch> {
      for (const indices of batches.slice(options.startBatch ?? 0)) {
        const images = await Promise.all(indices.map((i) => source.load(i, options.channels)));
        const { width, height, channels } = images[0];
        const views = options.views.map((pipeline) => {
          const data = new Float32Array(indices.length * width * height * channels);
          images.forEach((image, b) => {
            data.set(applyPipeline(image, pipeline), b * width * height * channels);
          });
          return { data, shape: [indices.length, height, width, channels] };
        });
        yield {
          indices: Int32Array.from(indices),
          labels: source.labels ? Int32Array.from(indices, (i) => source.labels![i]) : undefined,
          views,
        };
      }
    },
  };
}

/** Components for pretrain(): the stand-ins above. */
export function tinyComponents(source: ImageSource = makeSource(48)): Partial<TrainComponents> {
  const task = makeTinyRotationTask();
  return {
    getTask: (id) => {
      if (id !== task.id) throw new Error(`unknown task ${id}`);
      return task;
    },
    createBackbone: (config, rng) => createTinyBackbone(config.inputChannels, rng),
    openSource: async () => source,
    createLoader: simpleLoader,
  };
}

/** A resolved tiny recipe; `overrides` are deep-merged plain data (validated by the schema). */
export function tinyRecipe(overrides: Record<string, unknown> = {}): PretrainRecipe {
  const base = {
    name: 'tiny',
    seed: 3,
    task: { id: 'tiny-rotation', options: {} },
    input: { size: 8, channels: 1 },
    data: { batchSize: 8 },
    train: { epochs: 2, optimizer: { name: 'sgd', lr: 0.05, momentum: 0.9 }, schedule: { name: 'constant' } },
  };
  const merge = (a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> => {
    const out = { ...a };
    for (const [k, v] of Object.entries(b)) {
      out[k] =
        v && typeof v === 'object' && !Array.isArray(v) && a[k] && typeof a[k] === 'object'
          ? merge(a[k] as Record<string, unknown>, v as Record<string, unknown>)
          : v;
    }
    return out;
  };
  const recipe = validate(PRETRAIN_SCHEMA, merge(base, overrides), 'recipe') as PretrainRecipe;
  recipe.input.mean ??= [0.5];
  recipe.input.std ??= [0.5];
  return recipe;
}
