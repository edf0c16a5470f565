/**
 * `selfsup fewshot`: a dump of unlabeled images and a few labels, in one call —
 * pretrain a backbone on the dump by a pretraining recipe, then finetune it on the
 * labels with the dump as unlabeled images by a finetuning recipe (FixMatch and/or
 * self-training rounds, as that recipe says). Two library calls, `pretrain` and
 * `runFinetune`, into one folder:
 *
 * ```
 * <out>/pretrain/   the pretraining run (checkpoints, metrics, backbone/)
 * <out>/model/      the finetuned classifier, its report and summary.json
 * <out>/fewshot.json  both recipes' files, the inputs, minutes per stage, the headline numbers
 * ```
 *
 * Running the same command again continues: a finished pretraining is reused, an
 * unfinished one resumes from its last checkpoint, and an interrupted finetune
 * resumes from `<out>/model.training/`.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { progressOf } from '../finetune/budget.js';
import { type FinetuneSummary, runFinetune, trainingDirOf } from '../finetune/run.js';
import type { FinetuneRecipe } from '../recipes/finetune-schema.js';
import type { PretrainRecipe } from '../recipes/pretrain-schema.js';
import { pretrain } from '../train/loop.js';
import { readStatus } from '../train/run-dir.js';
import { writeFileAtomic } from '../util/atomic.js';
import { UsageError } from '../util/errors.js';

export interface FewShotOptions {
  pretrainRecipe: PretrainRecipe;
  pretrainRecipeFile?: string;
  finetuneRecipe: FinetuneRecipe;
  finetuneRecipeFile?: string;
  /** The unlabeled dump: pretraining data and the finetune's unlabeled images. */
  data: string;
  /** The labeled images (class folders, a table, IDX). */
  labels: string;
  /** Labeled test images for the report (default: the finetune recipe's holdout of --labels). */
  test?: string;
  /** Use at most this many dump images as the finetune's unlabeled images (a seeded sample). */
  unlabeledLimit?: number;
  testLimit?: number;
  out: string;
  progress?: boolean;
  /** One line per stage start and end. */
  log?: (line: string) => void;
}

export interface FewShotResult {
  out: string;
  pretrainRun: string;
  /** Whether this call reused a finished pretraining. */
  pretrainReused: boolean;
  finetune: FinetuneSummary;
  minutes: { pretrain: number; finetune: number };
}

/** Pretrains on `data`, then finetunes on `labels` with `data` as unlabeled images. */
export async function runFewShot(options: FewShotOptions): Promise<FewShotResult> {
  const { out } = options;
  const runDir = path.join(out, 'pretrain');
  const modelDir = path.join(out, 'model');
  if (existsSync(path.join(modelDir, 'summary.json'))) {
    throw new UsageError(`${modelDir} already holds a finished model: choose another --out, or remove ${out}`);
  }
  const started = Date.now();
  const status = existsSync(runDir) ? readStatus(runDir)?.status : undefined;
  const pretrainReused = status === 'finished';
  if (pretrainReused) {
    options.log?.(`pretrain: reusing the finished run ${runDir}`);
  } else {
    options.log?.(
      `pretrain: ${options.pretrainRecipe.task.id} on ${options.data}${status ? ` (resuming ${runDir})` : ''}`,
    );
    const result = await pretrain(options.pretrainRecipe, {
      dataPath: options.data,
      outDir: out,
      runId: 'pretrain',
      resume: status ? runDir : undefined,
      progress: options.progress,
    });
    if (result.status !== 'finished') {
      throw new UsageError(`pretraining stopped before its end (${runDir}); run the same command again to continue`);
    }
  }
  const pretrainMinutes = (Date.now() - started) / 60_000;
  const { finetuneRecipe } = options;
  if (!finetuneRecipe.fixmatch.enabled && finetuneRecipe.selfTraining.rounds === 0) {
    options.log?.(
      'warning: the finetuning recipe uses no unlabeled images (fixmatch.enabled false, selfTraining.rounds 0)',
    );
  }
  const resume = existsSync(path.join(trainingDirOf(modelDir), 'run.json'));
  options.log?.(`finetune: ${options.labels} with ${options.data} as unlabeled images${resume ? ' (resuming)' : ''}`);
  const finetuneStart = Date.now();
  const finetune = await runFinetune({
    recipe: finetuneRecipe,
    recipeFile: options.finetuneRecipeFile,
    backbone: runDir,
    labels: options.labels,
    test: options.test,
    unlabeled: options.data,
    unlabeledLimit: options.unlabeledLimit,
    testLimit: options.testLimit,
    out: modelDir,
    resume,
    progress: options.progress,
    onEpoch: progressOf('finetune', finetuneRecipe, options),
    onWarning: (message) => options.log?.(`warning: ${message}`),
  });
  const result: FewShotResult = {
    out,
    pretrainRun: runDir,
    pretrainReused,
    finetune,
    minutes: { pretrain: pretrainMinutes, finetune: (Date.now() - finetuneStart) / 60_000 },
  };
  await writeFileAtomic(
    path.join(out, 'fewshot.json'),
    `${JSON.stringify(
      {
        recipes: { pretrain: options.pretrainRecipeFile ?? null, finetune: options.finetuneRecipeFile ?? null },
        data: options.data,
        labels: options.labels,
        test: options.test ?? null,
        ...result,
      },
      null,
      2,
    )}\n`,
  );
  return result;
}
