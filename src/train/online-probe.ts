/**
 * The online linear probe: a linear classifier on the backbone features the
 * task returns for each pretraining batch, trained on the labelled images of the
 * batch with its own SGD (momentum 0.9, L2 weight decay) and no gradient into the
 * backbone (solo-learn's online linear evaluation). Its accuracy on each batch,
 * measured before that batch's update, tracks how linearly separable the
 * features are while pretraining runs. Active only when the pretraining images
 * carry labels (e.g. a labelled IDX file or class folders; rows labelled -1 are
 * skipped). Its weights and momentum are variables, checkpointed with the run.
 */
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../util/rng.js';
import type { NamedTensorVariable } from './checkpoint.js';

export interface OnlineProbeConfig {
  enabled: boolean;
  learningRate: number;
  weightDecay: number;
}

export class OnlineProbe {
  private readonly weight: tf.Variable; // [D, K]
  private readonly bias: tf.Variable; // [K]
  private readonly weightMomentum: tf.Variable;
  private readonly biasMomentum: tf.Variable;

  constructor(
    readonly featureDim: number,
    readonly numClasses: number,
    private readonly config: OnlineProbeConfig,
    rng: Rng,
  ) {
    const bound = 1 / Math.sqrt(featureDim);
    const values = Float32Array.from({ length: featureDim * numClasses }, () => rng.uniform(-bound, bound));
    this.weight = tf.tidy(() => tf.variable(tf.tensor2d(values, [featureDim, numClasses]), false));
    this.bias = tf.tidy(() => tf.variable(tf.zeros([numClasses]), false));
    this.weightMomentum = tf.tidy(() => tf.variable(tf.zeros([featureDim, numClasses]), false));
    this.biasMomentum = tf.tidy(() => tf.variable(tf.zeros([numClasses]), false));
  }

  /** The probe's variables, for checkpoints. */
  variables(): NamedTensorVariable[] {
    return [
      { name: 'monitor.probe.weight', variable: this.weight },
      { name: 'monitor.probe.bias', variable: this.bias },
      { name: 'monitor.probe.weight_momentum', variable: this.weightMomentum },
      { name: 'monitor.probe.bias_momentum', variable: this.biasMomentum },
    ];
  }

  /**
   * One update on the labelled rows of a batch: features [N, D] (treated as
   * constants) whose first B rows are the batch's B images in order (rotation's
   * all-four embeddings are [4B, D], rotation 0 first), labels [B] (-1 =
   * unlabelled). Returns the accuracy on those rows before the update, or NaN
   * when no row is labelled.
   */
  async update(features: tf.Tensor2D, labels: Int32Array): Promise<number> {
    const rows: number[] = [];
    for (let i = 0; i < labels.length; i++) if (labels[i] >= 0 && labels[i] < this.numClasses) rows.push(i);
    if (rows.length === 0 || features.shape[0] < labels.length) return Number.NaN;
    const correct = tf.tidy(() => {
      const index = tf.tensor1d(rows, 'int32');
      const x = tf.gather(features, index) as tf.Tensor2D; // [N, D]
      const y = tf.oneHot(
        tf.tensor1d(
          rows.map((r) => labels[r]),
          'int32',
        ),
        this.numClasses,
      ); // [N, K]
      const logits = tf.add(tf.matMul(x, this.weight as tf.Tensor2D), this.bias); // [N, K]
      const hits = tf.sum(tf.cast(tf.equal(tf.argMax(logits, 1), tf.argMax(y, 1)), 'float32'));
      // Softmax cross-entropy gradients, by hand: dL/dlogits = (softmax - y) / N.
      const delta = tf.div(tf.sub(tf.softmax(logits), y), rows.length); // [N, K]
      const { learningRate: lr, weightDecay } = this.config;
      const gradWeight = tf.add(tf.matMul(x, delta, true, false), tf.mul(this.weight, weightDecay));
      const gradBias = tf.sum(delta, 0);
      this.weightMomentum.assign(tf.add(tf.mul(this.weightMomentum, 0.9), gradWeight));
      this.biasMomentum.assign(tf.add(tf.mul(this.biasMomentum, 0.9), gradBias));
      this.weight.assign(tf.sub(this.weight, tf.mul(this.weightMomentum, lr)));
      this.bias.assign(tf.sub(this.bias, tf.mul(this.biasMomentum, lr)));
      return hits;
    });
    try {
      return (await correct.data())[0] / rows.length;
    } finally {
      correct.dispose();
    }
  }

  dispose(): void {
    tf.dispose([this.weight, this.bias, this.weightMomentum, this.biasMomentum]);
  }
}

/** An online probe for a source with labels when the recipe enables it, else undefined. */
export function createOnlineProbe(
  config: OnlineProbeConfig,
  labels: Int32Array | undefined,
  classNames: string[] | undefined,
  featureDim: number,
  rng: Rng,
): OnlineProbe | undefined {
  if (!config.enabled || !labels) return undefined;
  let numClasses = classNames?.length ?? 0;
  for (const label of labels) numClasses = Math.max(numClasses, label + 1);
  if (numClasses < 2) return undefined;
  return new OnlineProbe(featureDim, numClasses, config, rng);
}
