/**
 * How a pretraining run ends, each recorded in its run folder: finished (the
 * backbone export, metrics.arrow, curves.png, status), stopped (a checkpoint
 * unless the newest one is current, status), diverged (metrics.arrow, status and
 * a DivergenceError naming the last good checkpoint) or failed (status only; the
 * last checkpoint stays the resume point).
 */
import path from 'node:path';
import { UsageError } from '../util/errors.js';
import { checkpointName, writeModuleTensors } from './checkpoint.js';
import { writeCurves } from './metrics.js';
import { saveRunCheckpoint } from './pretrain-checkpoints.js';
import type { PretrainRun } from './pretrain-run.js';
import { writeStatus } from './run-dir.js';
import { DivergenceError } from './step.js';

/** The finished run: backbone export, curves, status. */
export async function finishRun(run: PretrainRun): Promise<void> {
  const { runDir, recipe, parts } = run;
  const backbone = run.model.backbone;
  const exportDir = path.join(runDir, 'backbone');
  run.compiledStep?.pull();
  if (parts.saveBackbone) await parts.saveBackbone(backbone, exportDir, run.exportMetadata);
  else await writeModuleTensors(exportDir, backbone, { config: backbone.config, ...run.exportMetadata });
  await run.metrics.writeArrow(path.join(runDir, 'metrics.arrow'));
  await writeCurves(path.join(runDir, 'curves.png'), run.metrics, `${recipe.task.id} / ${recipe.backbone.arch}`);
  await writeStatus(runDir, { status: 'finished', ...run.position });
  run.progress.finish('done');
  run.emit({ type: 'end', runDir, status: 'finished' });
}

/**
 * Interrupted (Ctrl-C, SIGTERM) or the step budget is spent (`reason` says which):
 * keeps everything done so far, then stops.
 */
export async function stopRun(run: PretrainRun, reason: string): Promise<void> {
  if (run.lastGood === undefined || !run.lastGood.endsWith(checkpointName(run.position.globalStep))) {
    await saveRunCheckpoint(run);
  }
  await writeStatus(run.runDir, { status: 'stopped', message: reason, ...run.position });
  run.emit({ type: 'end', runDir: run.runDir, status: 'stopped' });
  run.progress.finish(reason === 'interrupted' ? 'interrupted' : 'stopped');
}

/**
 * Records that the step at the run's position diverged (`problem`, from step.ts's
 * divergence) and returns the error to throw; the weights were not touched.
 */
export async function divergedRun(run: PretrainRun, problem: string): Promise<DivergenceError> {
  const { epoch, step, globalStep } = run.position;
  const where = `epoch ${epoch}, step ${step} (global step ${globalStep + 1})`;
  const kept = run.lastGood ? `the last good checkpoint is ${run.lastGood}` : 'no checkpoint had been written yet';
  const message = `training stopped at ${where}: ${problem}; ${kept}. Lower the learning rate (recipe.train.optimizer.lr or --lr-override ${epoch}=LR) or set recipe.train.gradClipNorm, then resume.`;
  await run.metrics.writeArrow(path.join(run.runDir, 'metrics.arrow'));
  await writeStatus(run.runDir, { status: 'diverged', message, ...run.position });
  run.progress.finish('diverged');
  return new DivergenceError(message, run.runDir, run.lastGood);
}

/** Any other failure: says so in status.json (best effort); the last checkpoint stays the resume point. */
export async function recordFailure(run: PretrainRun, error: unknown): Promise<void> {
  if (!(error instanceof DivergenceError || error instanceof UsageError)) {
    await writeStatus(run.runDir, { status: 'failed', message: (error as Error).message, ...run.position }).catch(
      () => {},
    );
  }
}
