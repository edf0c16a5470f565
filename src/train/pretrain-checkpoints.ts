/**
 * A pretraining run's checkpoints as the loop uses them (checkpoint.ts holds the
 * format): the training state one records, writing one (then metrics.arrow and
 * the `checkpoint` event), and the run's two starts other than fresh weights —
 * resuming from a checkpoint, or continued pretraining from recipe.init.weights.
 */
import path from 'node:path';
import { UsageError } from '../util/errors.js';
import { loadCheckpoint, saveCheckpoint, type TrainingState } from './checkpoint.js';
import type { PretrainRun } from './pretrain-run.js';

/** What a checkpoint records besides the variables: where the run is and what it needs to continue identically. */
export function trainingState(run: PretrainRun): TrainingState {
  const { optimizer, backbone } = run.model;
  return {
    epoch: run.position.epoch,
    step: run.position.step,
    globalStep: run.position.globalStep,
    stepsPerEpoch: run.stepsPerEpoch,
    seed: run.recipe.seed,
    referenceLoss: run.referenceLoss,
    optimizer: { name: optimizer.name, ...optimizer.hostState() },
    rngState: run.root.state(),
    savedAt: new Date().toISOString(),
    numBatchesTracked: (backbone as { numBatchesTracked?: number }).numBatchesTracked,
  };
}

/** Writes a checkpoint of the run now (the compiled step's weights pulled first), then metrics.arrow. */
export async function saveRunCheckpoint(run: PretrainRun): Promise<void> {
  const { parts, model } = run;
  run.compiledStep?.pull();
  const exportInto = parts.saveBackbone
    ? (dir: string) => parts.saveBackbone!(model.backbone, path.join(dir, 'backbone'), run.exportMetadata)
    : undefined;
  run.lastGood = await saveCheckpoint(
    run.runDir,
    model.saved,
    trainingState(run),
    run.metrics,
    run.recipe.train.keepCheckpoints,
    exportInto,
  );
  await run.metrics.writeArrow(path.join(run.runDir, 'metrics.arrow'));
  run.emit({ type: 'checkpoint', dir: run.lastGood });
}

/** Continues the run from `resumeDir`: its variables, position, metrics, reference loss and optimizer host state. */
export async function resumeRun(run: PretrainRun, resumeDir: string): Promise<void> {
  const loaded = loadCheckpoint(resumeDir, run.model.saved);
  if (loaded.state.stepsPerEpoch !== run.stepsPerEpoch) {
    throw new UsageError(
      `cannot resume ${run.runDir}: it had ${loaded.state.stepsPerEpoch} steps per epoch, the data now gives ${run.stepsPerEpoch}`,
    );
  }
  run.metrics = loaded.metrics;
  run.position = { epoch: loaded.state.epoch, step: loaded.state.step, globalStep: loaded.state.globalStep };
  run.referenceLoss = loaded.state.referenceLoss;
  run.model.optimizer.restoreHostState(loaded.state.optimizer);
  if (loaded.state.numBatchesTracked !== undefined)
    (run.model.backbone as { numBatchesTracked?: number }).numBatchesTracked = loaded.state.numBatchesTracked;
  run.lastGood = resumeDir;
  await run.metrics.writeArrow(path.join(run.runDir, 'metrics.arrow'));
}

/**
 * Loads recipe.init.weights into the backbone (continued pretraining); warns when
 * the weights were trained with another input mean or std.
 */
export async function startFromInitWeights(run: PretrainRun, weights: string): Promise<void> {
  const { parts, input } = run;
  if (!parts.loadInitWeights) throw new UsageError('recipe.init.weights is set but no weight loader was given');
  const from = await parts.loadInitWeights(run.model.backbone, weights);
  for (const key of ['mean', 'std'] as const) {
    const differs =
      from[key].length !== input[key].length || from[key].some((v, i) => Math.abs(v - input[key][i]) > 1e-6);
    if (differs) {
      run.emit({
        type: 'warning',
        message:
          `recipe.input.${key} [${input[key].join(', ')}] differs from the one ${weights} was trained with ` +
          `[${from[key].join(', ')}]; set recipe.input.${key} to match unless the change is deliberate`,
      });
    }
  }
}
