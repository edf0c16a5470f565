/**
 * One training step's forward and backward pass, task-agnostic: the task's
 * `step()` gives the loss; gradients come from tf.variableGrads over the
 * trainable variables; they are clipped by global norm. Runs inside one tf.tidy
 * with no await; what leaves it (gradients, a few scalars) is owned by the caller
 * through {@link ComputedStep.dispose}.
 */
import * as tf from '@tensorflow/tfjs';
import type { PretextTask, StepContext } from '../../pretext-tasks/types.js';
import type { Backbone } from '../backbones/types.js';
import type { Batch } from '../data/types.js';
import type { DivergenceLimits } from '../recipes/optimizer-schema.js';
import type { Rng } from '../util/rng.js';
import { embeddingSpread } from './collapse.js';
import { clipByGlobalNorm, type TrainableParam } from './optimizers.js';

export interface StepInputs {
  // biome-ignore lint/suspicious/noExplicitAny: tasks have their own option and head types
  task: PretextTask<any, any>;
  taskOptions: object;
  backbone: Backbone;
  heads: unknown;
  params: TrainableParam[];
  batch: Batch;
  rng: Rng;
  gradClipNorm: number;
  /** Also measure the embedding spread (collapse alarm) when the task returns embeddings. */
  measureSpread: boolean;
  /** Also return the task's embeddings (for the online linear probe). */
  keepEmbeddings?: boolean;
  /** The task's cross-step state for this step (target, buffers, position), from TaskState.context(). */
  context?: Pick<StepContext<unknown>, 'target' | 'buffers' | 'progress'>;
}

export interface ComputedStep {
  loss: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  metrics: Record<string, number>;
  /** Embedding spread, NaN when not measured. */
  spread: number;
  /** Embedding size D (0 when not measured). */
  embeddingDim: number;
  /** Clipped gradients keyed by parameter name. */
  grads: Record<string, tf.Tensor>;
  /** The task's embeddings [B, D] when asked for with keepEmbeddings. */
  embeddings?: tf.Tensor2D;
  /** New values of the task's buffers (for TaskState.update). */
  bufferUpdates: Record<string, tf.Tensor>;
  /** Frees the gradients and buffer updates. */
  dispose(): void;
}

/** What a loss function returns to {@link lossAndGradients}. */
export interface LossOutput {
  loss: tf.Scalar;
  /** Tensors made by the forward pass the caller wants after the step (metrics, predictions). */
  keep?: Record<string, tf.Tensor | undefined>;
}

/** A loss, its gradients and what the forward pass kept; free with `dispose()`. */
export interface Gradients {
  loss: tf.Scalar;
  /** Global gradient norm before clipping. */
  norm: tf.Scalar;
  /** Clipped gradients keyed by parameter name (parameters the loss does not reach are absent). */
  grads: Record<string, tf.Tensor>;
  kept: Record<string, tf.Tensor>;
  dispose(): void;
}

/**
 * The step engine's forward + backward: runs `forward` under tf.variableGrads
 * over `params` (the trained subset; other variables are constants), names the
 * gradients by parameter and clips them by global norm. Everything runs in one
 * tf.tidy with no await; the weights are not touched.
 */
export function lossAndGradients(params: TrainableParam[], forward: () => LossOutput, gradClipNorm: number): Gradients {
  const byVariableName = new Map(params.map((p) => [p.variable.name, p.name]));
  const kept: Record<string, tf.Tensor> = {};
  const result = tf.tidy(() => {
    const { value, grads: byVariable } = tf.variableGrads(
      () => {
        const out = forward();
        // Tensors made inside variableGrads would be freed with its scope: keep them (freed by dispose()).
        for (const [key, t] of Object.entries(out.keep ?? {})) if (t) kept[key] = tf.keep(t.clone());
        return out.loss;
      },
      params.map((p) => p.variable),
    );
    const named: Record<string, tf.Tensor> = {};
    for (const [variableName, g] of Object.entries(byVariable)) {
      const param = byVariableName.get(variableName);
      if (param && g) named[param] = g;
    }
    const clipped = clipByGlobalNorm(named, gradClipNorm);
    return { loss: value as tf.Scalar, grads: clipped.grads, norm: clipped.norm };
  });
  return {
    ...result,
    kept,
    dispose: () => tf.dispose([result.loss, result.norm, ...Object.values(result.grads), ...Object.values(kept)]),
  };
}

/** Forward + backward for one batch; the weights are not touched. */
export async function computeStep(inputs: StepInputs): Promise<ComputedStep> {
  const { task, taskOptions, backbone, heads, params, batch, rng } = inputs;
  let embeddingDim = 0;
  const step = lossAndGradients(
    params,
    () => {
      const views = batch.views.map((v) => tf.tensor(v.data, v.shape, 'float32'));
      const out = task.step({ ...inputs.context, backbone, heads, views, training: true, rng }, taskOptions);
      const keep: Record<string, tf.Tensor> = {};
      for (const [name, value] of Object.entries(out.bufferUpdates ?? {})) keep[`buffer:${name}`] = value;
      if (inputs.keepEmbeddings && out.embeddings) keep['buffer:embeddings'] = out.embeddings;
      for (const [key, m] of Object.entries(out.metrics)) keep[`metric:${key}`] = m as tf.Tensor;
      if (inputs.measureSpread && out.embeddings) {
        embeddingDim = out.embeddings.shape[1];
        keep.spread = embeddingSpread(out.embeddings);
      }
      return { loss: out.loss, keep };
    },
    inputs.gradClipNorm,
  );
  const { grads, kept } = step;
  const bufferUpdates: Record<string, tf.Tensor> = {};
  for (const [key, value] of Object.entries(kept)) {
    if (key.startsWith('buffer:')) {
      bufferUpdates[key.slice('buffer:'.length)] = value;
      delete kept[key];
    }
  }
  const embeddings = bufferUpdates.embeddings as tf.Tensor2D | undefined;
  delete bufferUpdates.embeddings;
  try {
    const metrics: Record<string, number> = {};
    for (const [key, m] of Object.entries(kept)) {
      if (key.startsWith('metric:')) metrics[key.slice('metric:'.length)] = (await m.data())[0];
    }
    return {
      loss: (await step.loss.data())[0],
      gradNorm: (await step.norm.data())[0],
      metrics,
      spread: kept.spread ? (await kept.spread.data())[0] : Number.NaN,
      embeddingDim,
      grads,
      embeddings,
      bufferUpdates,
      dispose: () =>
        tf.dispose([...Object.values(grads), ...Object.values(bufferUpdates), ...(embeddings ? [embeddings] : [])]),
    };
  } catch (error) {
    tf.dispose([...Object.values(grads), ...Object.values(bufferUpdates), ...(embeddings ? [embeddings] : [])]);
    throw error;
  } finally {
    tf.dispose([step.loss, step.norm, ...Object.values(kept)]);
  }
}

/** A run stopped because its loss diverged; the last good checkpoint is kept. */
export class DivergenceError extends Error {
  override name = 'DivergenceError';
  constructor(
    message: string,
    readonly runDir: string,
    readonly lastGoodCheckpoint: string | undefined,
  ) {
    super(message);
  }
}

/** Why a step's loss counts as diverged, or undefined when it is fine. */
export function divergence(
  loss: number,
  gradNorm: number,
  referenceLoss: number | null,
  limits: DivergenceLimits,
): string | undefined {
  if (!Number.isFinite(loss)) return `the loss is ${loss}`;
  if (!Number.isFinite(gradNorm)) return `the gradient norm is ${gradNorm} (loss ${loss})`;
  if (loss > limits.maxLoss) return `the loss ${loss} exceeds recipe.train.divergence.maxLoss (${limits.maxLoss})`;
  if (referenceLoss !== null && referenceLoss > 0 && loss > limits.explodeFactor * referenceLoss) {
    return `the loss exploded to ${loss}, more than recipe.train.divergence.explodeFactor (${limits.explodeFactor}) times the first loss ${referenceLoss}`;
  }
  return undefined;
}
