/**
 * Finetuning's training step as one compiled graph (src/train/compiled-step.ts):
 * the backbone, the classifier head, the supervised loss of losses.ts, the
 * gradients, global-norm clipping and the SGD update with the backbone/head
 * parameter groups, run per step in a session. The batch is augmented on the
 * host as in the eager step (train.ts); the augmented images and one-hot labels
 * are fed in.
 *
 * The loss is losses.ts's as graph operations: softmax cross-entropy of the
 * label-smoothed target `(1 - eps) onehot(y) + eps / K`, the mean weighted by
 * w[y] and normalised by the weights' sum with class weights; or the softmax
 * focal loss `-alpha[y] (1 - p_y)^gamma log p_y`, the plain mean.
 */
import * as tf from '@tensorflow/tfjs';
import { accuracyGraph } from '../../pretext-tasks/graph-losses.js';
import type { CompiledTaskStep } from '../../pretext-tasks/types.js';
import { DT_FLOAT, DT_INT32, type GraphBuilder } from '../engine/graph-runtime.js';
import type { OptimizerConfig } from '../recipes/optimizer-schema.js';
import {
  type CompiledStepResult,
  type CompiledTask,
  CompiledTrainingStep,
  compiledStepProblem,
  type MirroredVariable,
} from '../train/compiled-step.js';
import type { TrainableParam, VariableOptimizer } from '../train/optimizers.js';
import { createRng } from '../util/rng.js';
import type { Classifier } from './classifier.js';
import type { LossSpec } from './train.js';

const FLOAT = { type: DT_FLOAT };

/** The optimizers finetuning runs compiled (its loop feeds Adam's per-parameter update counts). */
const FINETUNE_OPTIMIZERS = ['sgd', 'adam', 'adamw'] as const;

/** The supervised loss as a compiled task: feeds [images, one-hot labels]; the graph's loss and accuracy. */
export function supervisedCompiledTask(loss: LossSpec, numClasses: number, classWeights?: number[]): CompiledTask {
  const compiled: CompiledTaskStep<object> = {
    problem: () => undefined,
    targetShape: () => [numClasses],
    // views = [augmented images [B, H, W, C], one-hot labels [B, K]] (the caller keeps and disposes them).
    inputs: ({ views }) => ({ images: tf.clone(views[0]) as tf.Tensor4D, targets: tf.clone(views[1]) }),
    graph(g, features, targets, head) {
      if (!targets) throw new Error('the compiled supervised step needs its one-hot labels');
      const logits = head('classifier', features); // [B, K]
      return {
        loss: supervisedLossGraph(g, logits, targets, loss, numClasses, classWeights),
        metrics: { accuracy: accuracyGraph(g, logits, targets) },
      };
    },
  };
  return { id: `supervised ${loss.type}`, compiled };
}

function reduce(g: GraphBuilder, op: 'Sum' | 'Mean', x: string, axes: number[]): string {
  return g.op(op, [x, g.constInt(axes, [axes.length], 'axes')], {
    T: FLOAT,
    Tidx: { type: DT_INT32 },
    keep_dims: { bool: false },
  });
}

/** losses.ts's supervisedLoss for logits [B, K] and one-hot targets [B, K] -> scalar. */
export function supervisedLossGraph(
  g: GraphBuilder,
  logits: string,
  oneHot: string,
  loss: LossSpec,
  numClasses: number,
  classWeights?: number[],
): string {
  const mul = (a: string, b: string) => g.op('Mul', [a, b], { T: FLOAT });
  const constant = (v: number) => g.constFloat([v], []);
  /** Per-class values v[y] of each row: sum_k onehot[b, k] v[k] -> [B]. */
  const perRow = (values: number[]) => reduce(g, 'Sum', mul(oneHot, g.constFloat(values, [numClasses])), [1]);
  if (loss.type === 'focal') {
    const logProbs = g.op('LogSoftmax', [logits], { T: FLOAT }); // [B, K]
    const logPt = reduce(g, 'Sum', mul(logProbs, oneHot), [1]); // [B]
    let perSample = g.op('Neg', [logPt], { T: FLOAT });
    if (loss.gamma !== 0) {
      const pt = g.op('Exp', [logPt], { T: FLOAT });
      // (1 - p_t)^gamma, clipped at 0 as losses.ts does.
      const base = g.op('Relu', [g.op('Sub', [constant(1), pt], { T: FLOAT })], { T: FLOAT });
      perSample = mul(g.op('Pow', [base, constant(loss.gamma)], { T: FLOAT }), perSample);
    }
    if (classWeights) perSample = mul(perSample, perRow(classWeights));
    return reduce(g, 'Mean', perSample, [0]);
  }
  const eps = loss.labelSmoothing;
  const target =
    eps > 0 ? g.op('AddV2', [mul(oneHot, constant(1 - eps)), constant(eps / numClasses)], { T: FLOAT }) : oneHot;
  const perSample = g.op('SoftmaxCrossEntropyWithLogits', [logits, target], { T: FLOAT }); // [B]
  if (!classWeights) return reduce(g, 'Mean', perSample, [0]);
  const weights = perRow(classWeights); // [B]
  return g.op(
    'RealDiv',
    [
      reduce(g, 'Sum', mul(perSample, weights), [0]),
      g.op('Maximum', [reduce(g, 'Sum', weights, [0]), constant(1e-12)], { T: FLOAT }),
    ],
    { T: FLOAT },
  );
}

/** Why finetuning with these settings cannot use the compiled step, or undefined when it can. */
export function compiledFinetuneProblem(
  classifier: Classifier,
  optimizer: OptimizerConfig,
  loss: LossSpec,
): string | undefined {
  return compiledStepProblem(
    {
      task: supervisedCompiledTask(loss, classifier.numClasses),
      taskOptions: {},
      backbone: classifier.backbone,
      heads: { classifier: classifier.head },
      optimizer,
    },
    FINETUNE_OPTIMIZERS,
  );
}

/** What one stage's compiled step is built from. */
export interface CompiledFinetuneSpec {
  classifier: Classifier;
  /** The stage's trained parameters (with their lrScale: the backbone/head parameter groups). */
  trained: TrainableParam[];
  optimizer: VariableOptimizer;
  optimizerConfig: OptimizerConfig;
  gradClipNorm: number;
  loss: LossSpec;
  classWeights?: number[];
  /** BatchNorm of the backbone in training mode (some backbone parameter trains). */
  backboneTraining: boolean;
  precision: 'float32' | 'bfloat16';
}

/**
 * One stage's compiled step over the classifier's variables: `step()` trains on
 * an augmented batch; `pull()` copies the session's weights, running statistics
 * and momentum back to the tfjs variables (before checkpoints and evaluation).
 */
export class CompiledFinetuneStep {
  private readonly step: CompiledTrainingStep;
  private readonly trainedNames: Set<string>;
  private readonly rng = createRng('compiled-finetune');
  /** Graph name (`backbone.conv1.weight`) -> the classifier's (`conv1.weight`). */
  private readonly classifierNames = new Map<string, string>();

  constructor(private readonly spec: CompiledFinetuneSpec) {
    const { classifier } = spec;
    const trained = new Map(spec.trained.map((p) => [p.name, p]));
    this.trainedNames = new Set(spec.trained.map((p) => p.name));
    const state = new Map(spec.optimizer.stateVariables().map((v) => [v.name, v.variable]));
    // Graph names: `backbone.<torchvision name>`, `heads.classifier.<head variable name>`.
    const mirrored: MirroredVariable[] = classifier.variables().map((v) => {
      const param = trained.get(v.name);
      const name = v.name.startsWith('head.') ? `heads.classifier.${v.name}` : `backbone.${v.name}`;
      this.classifierNames.set(name, v.name);
      const m = param && state.get(`optimizer.m.${v.name}`);
      const second = param && state.get(`optimizer.v.${v.name}`);
      return {
        name,
        variable: v.variable,
        trainable: param !== undefined,
        kind: v.kind,
        lrScale: param?.lrScale,
        momentum: param ? state.get(`optimizer.momentum.${v.name}`) : undefined,
        adam: m && second ? { m, v: second } : undefined,
      };
    });
    const { size, channels } = classifier.spec.input;
    this.step = new CompiledTrainingStep({
      task: supervisedCompiledTask(spec.loss, classifier.numClasses, spec.classWeights),
      taskOptions: {},
      backbone: classifier.backbone,
      heads: { classifier: classifier.head },
      variables: mirrored,
      optimizer: spec.optimizerConfig,
      gradClipNorm: spec.gradClipNorm,
      imageShape: [size, size, channels],
      precision: spec.precision,
      intraOpThreads: Number(process.env.TF_NUM_INTRAOP_THREADS) || 0,
      interOpThreads: Number(process.env.TF_NUM_INTEROP_THREADS) || 0,
      backboneTraining: spec.backboneTraining,
      optimizers: FINETUNE_OPTIMIZERS,
    });
  }

  /**
   * One step on normalised images [B, H, W, C] and labels [B]: forward, loss,
   * backward and update in the session. Counts the update in the optimizer's
   * host state and the backbone's BatchNorm batches as the eager step does.
   */
  run(images: tf.Tensor4D, labels: Int32Array, lr: number): CompiledStepResult {
    const targets = tf.tidy(() => tf.oneHot(tf.tensor1d(labels, 'int32'), this.spec.classifier.numClasses).toFloat());
    // Adam's bias correction: each parameter's own update count with this step (as the eager optimizer counts).
    const { optimizer } = this.spec;
    const updateCount = (name: string) => optimizer.updateCount(this.classifierNames.get(name) ?? name) + 1;
    try {
      return this.step.run([images, targets], this.rng, lr, false, updateCount);
    } finally {
      targets.dispose();
    }
  }

  /** Counts an applied update where the eager step counts it (optimizer update counts, BatchNorm batches). */
  countUpdate(): void {
    const { optimizer, classifier } = this.spec;
    optimizer.countUpdate(this.trainedNames);
    const tracked = classifier.backbone as { numBatchesTracked?: number };
    if (this.spec.backboneTraining && tracked.numBatchesTracked !== undefined) tracked.numBatchesTracked++;
  }

  pull(): void {
    this.step.pull();
  }

  dispose(): void {
    this.step.dispose();
  }
}
