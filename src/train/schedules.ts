/**
 * Learning-rate schedules, as pure functions of the position in training: the
 * same (epoch, step) always gives the same rate, which is what makes a resumed
 * run follow the schedule of an uninterrupted one.
 */
import type { ScheduleConfig } from '../recipes/optimizer-schema.js';

export interface SchedulePosition {
  /** 0-based epoch. */
  epoch: number;
  /** 0-based step inside the epoch. */
  step: number;
  stepsPerEpoch: number;
  /** Total epochs of the run. */
  epochs: number;
}

/**
 * The learning rate for one step.
 * - Overrides: `lrOverrides[epoch]`, when present, is the rate for that whole epoch.
 * - Warmup (every schedule): linear, lr * (t + 1) / warmupSteps for the first
 *   `warmupEpochs * stepsPerEpoch` steps.
 * - cosine: minLr + (lr - minLr) * (1 + cos(pi * progress)) / 2 after warmup,
 *   progress from 0 at the end of warmup to 1 at the last step.
 * - step: lr * gamma^(number of milestones <= epoch).
 */
export function learningRateAt(
  baseLr: number,
  schedule: ScheduleConfig,
  position: SchedulePosition,
  lrOverrides: Record<string, number> = {},
): number {
  const override = lrOverrides[String(position.epoch)];
  if (override !== undefined) return override;
  const { stepsPerEpoch, epochs } = position;
  const t = position.epoch * stepsPerEpoch + position.step;
  const total = Math.max(1, epochs * stepsPerEpoch);
  const warmupSteps = Math.round(schedule.warmupEpochs * stepsPerEpoch);
  if (t < warmupSteps) return (baseLr * (t + 1)) / warmupSteps;
  if (schedule.name === 'step') {
    const drops = schedule.milestones.filter((m) => m <= position.epoch).length;
    return baseLr * schedule.gamma ** drops;
  }
  if (schedule.name === 'constant') return baseLr;
  const span = Math.max(1, total - warmupSteps - 1);
  const progress = Math.min(1, (t - warmupSteps) / span);
  return schedule.minLr + ((baseLr - schedule.minLr) * (1 + Math.cos(Math.PI * progress))) / 2;
}
