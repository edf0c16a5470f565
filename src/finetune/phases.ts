/**
 * The epochs of a finetuning run as phases: the linear probe (if any), then one
 * phase per stage, each with its trained parameters, batch size, steps per epoch,
 * random-stream root and learning-rate schedule (learningRateAt of src/train).
 */
import type { ScheduleConfig } from '../recipes/optimizer-schema.js';
import type { TrainableParam } from '../train/optimizers.js';
import { learningRateAt } from '../train/schedules.js';
import { invalidOption } from '../util/errors.js';
import { createRng, type Rng } from '../util/rng.js';
import type { TrainOptions } from './train.js';

/** A run of epochs with one trained set: the probe, or one stage. */
export interface Phase {
  /** -1 for the probe, else the stage index. */
  stage: number;
  /** Global index of the phase's first epoch. */
  firstEpoch: number;
  epochs: number;
  trained: TrainableParam[];
  backboneTraining: boolean;
  /** Head on features computed once (no augmentation, no FixMatch, head only). */
  precomputed: boolean;
  batchSize: number;
  stepsPerEpoch: number;
  /** Root of the phase's random streams (the probe's are its own). */
  root: Rng;
  /** Learning rate at (epoch inside the probe / inside all stages, step). */
  lrAt(epoch: number, step: number): number;
  /** Epoch counted inside the probe, or inside all stages. */
  localEpoch(epoch: number): number;
}

function matches(name: string, prefixes: string[]): boolean {
  return prefixes.some(
    (p) => p === 'all' || (p === 'backbone' ? !name.startsWith('head.') : name === p || name.startsWith(`${p}.`)),
  );
}

/** The probe (if any) and the stages as phases, with their trained parameters and schedules. */
export function planPhases(options: TrainOptions, allParams: TrainableParam[], labeledCount: number): Phase[] {
  for (let i = 0; i < options.stages.length; i++) {
    if (options.stages[i].trainable.length === 0)
      throw invalidOption(`recipe.stages[${i}].trainable`, 'a non-empty list', []);
  }
  const headParams = allParams.filter((p) => p.name.startsWith('head.'));
  const phases: Phase[] = [];
  let firstEpoch = 0;
  const probe = options.probe && options.probe.epochs > 0 ? options.probe : undefined;
  if (probe) {
    const batchSize = Math.min(probe.batchSize, labeledCount);
    const stepsPerEpoch = Math.ceil(labeledCount / batchSize);
    const schedule: ScheduleConfig = { name: 'cosine', warmupEpochs: 0, minLr: 0, milestones: [], gamma: 0.1 };
    phases.push({
      stage: -1,
      firstEpoch,
      epochs: probe.epochs,
      trained: headParams,
      backboneTraining: false,
      precomputed: true,
      batchSize,
      stepsPerEpoch,
      root: createRng(`${options.seed}:probe`),
      lrAt: (epoch, step) => learningRateAt(probe.lr, schedule, { epoch, step, stepsPerEpoch, epochs: probe.epochs }),
      localEpoch: (epoch) => epoch,
    });
    firstEpoch += probe.epochs;
  }
  const headOnly = options.stages.every((s) => s.trainable.every((p) => p === 'head' || p.startsWith('head.')));
  const precomputed = headOnly && options.trainView.length === 0 && !options.fixmatch;
  const batchSize = Math.min(options.batchSize, labeledCount);
  const stepsPerEpoch = options.stepsPerEpoch ?? Math.ceil(labeledCount / batchSize);
  const stagesStart = firstEpoch;
  const stageEpochs = options.stages.reduce((n, s) => n + s.epochs, 0);
  const root = createRng(options.seed);
  options.stages.forEach((stage, index) => {
    const trained = allParams.filter((p) => matches(p.name, stage.trainable));
    if (trained.length === 0) {
      throw invalidOption(
        `recipe.stages[${index}].trainable`,
        'name prefixes that select some variables (head, layer4, backbone, all)',
        stage.trainable,
      );
    }
    phases.push({
      stage: index,
      firstEpoch,
      epochs: stage.epochs,
      trained,
      // The Backbone contract has one training flag: when any part of the backbone trains, every
      // BatchNorm layer normalises with batch statistics and updates its running statistics
      // (frozen parts keep their weights). Restoring the running statistics of frozen layers
      // would leave them inconsistent with what training saw, and evaluation would suffer.
      backboneTraining: trained.some((p) => !p.name.startsWith('head.')),
      precomputed,
      batchSize,
      stepsPerEpoch,
      root,
      lrAt: (epoch, step) =>
        learningRateAt(options.optimizer.lr, options.schedule, { epoch, step, stepsPerEpoch, epochs: stageEpochs }),
      localEpoch: (epoch) => epoch - stagesStart,
    });
    firstEpoch += stage.epochs;
  });
  return phases;
}
