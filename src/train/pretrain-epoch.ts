/**
 * What a pretraining run records as an epoch goes: each step's metrics row, its
 * `step` event and the collapse alarm (once per epoch); at the end of the epoch
 * the warning for images that could not be loaded, the summary row with the kNN
 * monitor, the `epoch` event, the move to the next epoch and its checkpoint.
 */
import { evalView } from '../data/augment/presets.js';
import { isCollapsed } from './collapse.js';
import type { BatchLoader } from './components.js';
import { type MetricsRow, summarizeEpoch } from './metrics.js';
import { knnAccuracy } from './monitor.js';
import { saveRunCheckpoint } from './pretrain-checkpoints.js';
import type { PretrainRun } from './pretrain-run.js';
import type { ComputedStep } from './step.js';

/** One epoch as it is recorded. */
export interface EpochRecord {
  epoch: number;
  /** performance.now() when the epoch (or the resumed part of it) began. */
  start: number;
  /** Step rows of this epoch so far (a resumed epoch continues its summary). */
  rows: MetricsRow[];
  collapseWarned: boolean;
}

export function beginEpoch(run: PretrainRun): EpochRecord {
  const epoch = run.position.epoch;
  const start = performance.now();
  const rows: MetricsRow[] = run.metrics.stepRows().filter((r) => r.epoch === epoch);
  return { epoch, start, rows, collapseWarned: false };
}

/** How one step went, besides what the step computed. */
export interface StepTiming {
  lr: number;
  /** Images in the batch. */
  images: number;
  dataWaitMs: number;
  /** Seconds from the batch's arrival to the applied update. */
  seconds: number;
  probeAccuracy: number | undefined;
}

/** Adds the row of the step at the run's position (before it moves on), emits it and sounds the collapse alarm. */
export function recordStep(
  run: PretrainRun,
  record: EpochRecord,
  computed: ComputedStep,
  timing: StepTiming,
): MetricsRow {
  const { epoch } = record;
  const { step, globalStep } = run.position;
  const { seconds, probeAccuracy } = timing;
  const spread = computed.spread;
  const row: MetricsRow = {
    kind: 'step',
    epoch,
    step,
    globalStep: globalStep + 1,
    loss: computed.loss,
    lr: timing.lr,
    gradNorm: computed.gradNorm,
    imagesPerSecond: timing.images / Math.max(seconds, 1e-9),
    dataWaitMs: timing.dataWaitMs,
    embeddingSpread: spread,
    knnAccuracy: Number.NaN,
    seconds,
    ...computed.metrics,
    ...(probeAccuracy === undefined ? {} : { probeAccuracy }),
  };
  run.metrics.add(row);
  record.rows.push(row);
  run.emit({ type: 'step', row });
  const collapseMinRatio = run.recipe.monitor.collapse.minRatio ?? run.task.collapseMinRatio ?? 0.1;
  const dim = computed.embeddingDim;
  if (Number.isFinite(spread) && !record.collapseWarned && isCollapsed(spread, dim, collapseMinRatio)) {
    record.collapseWarned = true;
    run.emit({
      type: 'warning',
      message: `possible collapse at epoch ${epoch}, step ${step}: embedding spread ${spread.toExponential(2)} is below ${collapseMinRatio} x 1/sqrt(${dim}) = ${(collapseMinRatio / Math.sqrt(dim)).toExponential(2)}`,
    });
  }
  return row;
}

/**
 * End of epoch (its loader closed): the bad-image warning, summary row, kNN
 * monitor, `epoch` event, the position at the next epoch, and a checkpoint when
 * train.checkpointEveryEpochs says or the run is done.
 */
export async function endEpoch(run: PretrainRun, record: EpochRecord, loader: BatchLoader): Promise<void> {
  const { recipe, validation } = run;
  const { epoch } = record;
  const bad = (loader.stats?.() as { bad?: Array<{ name: string; reason: string }> } | undefined)?.bad ?? [];
  if (bad.length) {
    const examples = bad
      .slice(0, 3)
      .map((b) => `${b.name} (${b.reason})`)
      .join('; ');
    run.emit({
      type: 'warning',
      message: `epoch ${epoch}: ${bad.length} image(s) could not be loaded and were replaced: ${examples}`,
    });
  }

  const epochSeconds = (performance.now() - record.start) / 1000;
  const summary = summarizeEpoch(record.rows, epoch, run.position.globalStep, epochSeconds);
  const lastEpoch = epoch + 1 === recipe.train.epochs;
  if (validation && ((epoch + 1) % recipe.monitor.knn.everyEpochs === 0 || lastEpoch)) {
    run.compiledStep?.pull();
    const evalViews = [evalView(run.input)];
    summary.knnAccuracy = await knnAccuracy(
      run.model.backbone,
      validation.source,
      validation.split,
      (indices) =>
        run.parts.createLoader(validation.source, {
          ...run.loaderOptions(0, 0),
          views: evalViews,
          subset: indices,
          shuffle: false,
          dropLast: false,
          batchSize: Math.min(256, recipe.data.batchSize),
        }),
      recipe.monitor.knn.k,
      recipe.monitor.knn.temperature,
    );
  }
  run.metrics.add(summary);
  run.emit({ type: 'epoch', row: summary });
  run.position = { epoch: epoch + 1, step: 0, globalStep: run.position.globalStep };
  if ((epoch + 1) % recipe.train.checkpointEveryEpochs === 0 || lastEpoch) await saveRunCheckpoint(run);
}
