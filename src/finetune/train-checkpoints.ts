/**
 * Checkpoints of a finetuning run, on the training engine's format
 * (src/train/checkpoint.ts: atomic directories, `checkpoints/last`):
 *
 * ```
 * <runDir>/checkpoints/ckpt-<globalStep>/   classifier variables, optimizer state, state.json, metrics.arrow
 * <runDir>/metrics.arrow                     step and epoch rows so far
 * <runDir>/status.json                       running | finished | diverged | failed
 * ```
 *
 * A checkpoint is written at an epoch boundary; a resumed run starts at the
 * epoch after it. `state.json` adds the epoch history to the engine's TrainingState.
 */
import path from 'node:path';
import {
  loadCheckpoint,
  type NamedTensorVariable,
  resumePoint,
  saveCheckpoint,
  type TrainingState,
} from '../train/checkpoint.js';
import type { MetricsLog } from '../train/metrics.js';
import type { VariableOptimizer } from '../train/optimizers.js';
import { type RunStatus, writeStatus } from '../train/run-dir.js';
import type { WeightEma } from '../train/weight-ema.js';
import { UsageError } from '../util/errors.js';
import type { Classifier } from './classifier.js';
import { type PseudoLabelState, restorePseudoLabelState } from './pseudo-labels.js';
import type { EpochMetrics } from './train.js';

/** TrainingState plus what only finetuning has. */
interface FinetuneState extends TrainingState {
  /** Per-epoch rows so far (history.arrow). */
  history: EpochMetrics[];
  /** Running statistics of FixMatch's alignment and self-adaptive thresholds. */
  pseudoLabels?: PseudoLabelState;
  /** Updates of the weights' moving average (train.emaDecay) so far. */
  emaUpdates?: number;
}

export interface FinetuneProgress {
  /** The next epoch to run (global, the probe's epochs first). */
  epoch: number;
  globalStep: number;
  referenceLoss: number | null;
  history: EpochMetrics[];
  metrics: MetricsLog;
  pseudoLabels?: PseudoLabelState;
}

export class FinetuneCheckpoints {
  /** The newest complete checkpoint of this run, if any. */
  lastGood: string | undefined;
  private readonly saved: NamedTensorVariable[];

  constructor(
    readonly runDir: string,
    classifier: Classifier,
    private readonly optimizer: VariableOptimizer,
    private readonly options: {
      keep: number;
      /** Save the backbone too (false when only the head ever trains). */
      withBackbone: boolean;
      /** The weights' moving average, saved as `ema.<name>` with its update count. */
      ema?: WeightEma;
      /** More variables to save under their own names (the auxiliary task's heads). */
      extra?: NamedTensorVariable[];
    },
  ) {
    this.saved = [...(options.withBackbone ? classifier.backbone.variables() : []), ...classifier.head.variables()].map(
      (v) => ({ name: `classifier.${v.name}`, variable: v.variable }),
    );
    this.saved.push(...optimizer.stateVariables());
    if (options.ema) this.saved.push(...options.ema.stateVariables());
    if (options.extra) this.saved.push(...options.extra);
  }

  /**
   * Loads the last checkpoint into the classifier and optimizer; undefined when
   * there is none yet. The run must have the checkpoint's steps per epoch (same data, same batch size).
   */
  async restore(stepsPerEpoch: number, numClasses: number): Promise<FinetuneProgress | undefined> {
    const dir = await resumePoint(this.runDir);
    if (!dir) return undefined;
    const loaded = loadCheckpoint(dir, this.saved);
    const state = loaded.state as FinetuneState;
    if (state.stepsPerEpoch !== stepsPerEpoch) {
      throw new UsageError(
        `cannot resume ${this.runDir}: it had ${state.stepsPerEpoch} steps per epoch, the data and recipe now give ${stepsPerEpoch}`,
      );
    }
    this.optimizer.restoreHostState(state.optimizer);
    if (this.options.ema) this.options.ema.updates = state.emaUpdates ?? 0;
    this.lastGood = dir;
    await loaded.metrics.writeArrow(path.join(this.runDir, 'metrics.arrow'));
    return {
      epoch: state.epoch,
      globalStep: state.globalStep,
      referenceLoss: state.referenceLoss,
      history: state.history,
      metrics: loaded.metrics,
      pseudoLabels: restorePseudoLabelState(state.pseudoLabels, numClasses),
    };
  }

  async save(progress: FinetuneProgress & { stepsPerEpoch: number; seed: string | number }): Promise<void> {
    const state: FinetuneState = {
      epoch: progress.epoch,
      step: 0,
      globalStep: progress.globalStep,
      stepsPerEpoch: progress.stepsPerEpoch,
      seed: typeof progress.seed === 'number' ? progress.seed : Number.NaN,
      referenceLoss: progress.referenceLoss,
      optimizer: { name: this.optimizer.name, ...this.optimizer.hostState() },
      rngState: {},
      savedAt: new Date().toISOString(),
      history: progress.history,
      pseudoLabels: progress.pseudoLabels,
      emaUpdates: this.options.ema?.updates,
    };
    this.lastGood = await saveCheckpoint(this.runDir, this.saved, state, progress.metrics, this.options.keep);
    await progress.metrics.writeArrow(path.join(this.runDir, 'metrics.arrow'));
  }

  async status(status: RunStatus['status'], epoch: number, globalStep: number, message?: string): Promise<void> {
    await writeStatus(this.runDir, { status, epoch, step: 0, globalStep, ...(message ? { message } : {}) });
  }
}
