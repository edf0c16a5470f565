/**
 * One training step's forward and backward pass, task-agnostic: the task's
 * `step()` gives the loss; gradients come from tf.variableGrads over the
 * trainable variables; they are clipped by global norm. Runs inside one tf.tidy
 * with no await; what leaves it (gradients, a few scalars) is owned by the caller
 * through {@link ComputedStep.dispose}.
 */
import * as tf from '@tensorflow/tfjs';
import type { PretextTask } from '../../pretext-tasks/types.js';
import type { Backbone } from '../backbones/types.js';
import type { Batch } from '../data/types.js';
import type { PretrainRecipe } from '../recipes/pretrain-schema.js';
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
  /** Frees the gradients. */
  dispose(): void;
}

/** Forward + backward for one batch; the weights are not touched. */
export async function computeStep(inputs: StepInputs): Promise<ComputedStep> {
  const { task, taskOptions, backbone, heads, params, batch, rng } = inputs;
  const byVariableName = new Map(params.map((p) => [p.variable.name, p.name]));
  const escaped: tf.Tensor[] = [];
  let taskMetrics: Record<string, tf.Scalar> = {};
  let spread: tf.Scalar | undefined;
  let embeddingDim = 0;
  const { loss, grads, norm } = tf.tidy(() => {
    const views = batch.views.map((v) => tf.tensor(v.data, v.shape, 'float32'));
    const { value, grads: byVariable } = tf.variableGrads(
      () => {
        const out = task.step({ backbone, heads, views, training: true, rng }, taskOptions);
        // Scalars made inside variableGrads would be freed with its scope: keep them, free them below.
        taskMetrics = out.metrics;
        for (const m of Object.values(out.metrics)) escaped.push(tf.keep(m));
        if (inputs.measureSpread && out.embeddings) {
          embeddingDim = out.embeddings.shape[1];
          spread = tf.keep(embeddingSpread(out.embeddings));
          escaped.push(spread);
        }
        return out.loss;
      },
      params.map((p) => p.variable),
    );
    const named: Record<string, tf.Tensor> = {};
    for (const [variableName, g] of Object.entries(byVariable)) {
      const param = byVariableName.get(variableName);
      if (param && g) named[param] = g;
    }
    const clipped = clipByGlobalNorm(named, inputs.gradClipNorm);
    return { loss: value as tf.Scalar, grads: clipped.grads, norm: clipped.norm };
  });
  try {
    const metrics: Record<string, number> = {};
    for (const [key, m] of Object.entries(taskMetrics)) metrics[key] = (await m.data())[0];
    return {
      loss: (await loss.data())[0],
      gradNorm: (await norm.data())[0],
      metrics,
      spread: spread ? (await (spread as tf.Scalar).data())[0] : Number.NaN,
      embeddingDim,
      grads,
      dispose: () => tf.dispose(Object.values(grads)),
    };
  } finally {
    tf.dispose([loss, norm, ...escaped]);
  }
}

/** Why a step's loss counts as diverged, or undefined when it is fine. */
export function divergence(
  loss: number,
  gradNorm: number,
  referenceLoss: number | null,
  limits: PretrainRecipe['train']['divergence'],
): string | undefined {
  if (!Number.isFinite(loss)) return `the loss is ${loss}`;
  if (!Number.isFinite(gradNorm)) return `the gradient norm is ${gradNorm} (loss ${loss})`;
  if (loss > limits.maxLoss) return `the loss ${loss} exceeds recipe.train.divergence.maxLoss (${limits.maxLoss})`;
  if (referenceLoss !== null && referenceLoss > 0 && loss > limits.explodeFactor * referenceLoss) {
    return `the loss exploded to ${loss}, more than recipe.train.divergence.explodeFactor (${limits.explodeFactor}) times the first loss ${referenceLoss}`;
  }
  return undefined;
}
