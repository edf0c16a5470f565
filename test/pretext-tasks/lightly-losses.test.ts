/**
 * The method losses against lightly's implementation on the same inputs
 * (fixtures/lightly-losses.json, written once by
 * scripts/reference/lightly_method_losses.py with lightly and PyTorch in a
 * virtual environment).
 */
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  barlowTwinsLoss,
  byolLoss,
  dinoCenter,
  dinoLoss,
  enqueue,
  infoNceLoss,
  simsiamLoss,
  vicregLoss,
} from '../../pretext-tasks/losses.js';
import { initEngine } from '../../src/engine/backend.js';
import { momentumAt } from '../../src/train/task-state.js';

type Matrix = number[][];
const fixture = JSON.parse(readFileSync(new URL('./fixtures/lightly-losses.json', import.meta.url), 'utf8')) as {
  inputs: {
    p1: Matrix;
    p2: Matrix;
    z1: Matrix;
    z2: Matrix;
    queue: Matrix;
    teacher: Matrix[];
    student: Matrix[];
    center: Matrix;
  };
  simsiam: number;
  byol: number;
  barlowTwins: Record<string, number>;
  vicreg: number;
  moco: Record<string, { loss: number; queueAfter: Matrix; pointerAfter: number }>;
  dino: Record<string, { loss: number; centerAfter: Matrix }>;
  momentum: { start: number; end: number; steps: number; values: number[] };
};
const { p1, p2, z1, z2, queue, teacher, student, center } = fixture.inputs;
const t2 = (m: Matrix) => tf.tensor2d(m);
const value = (f: () => tf.Scalar) => tf.tidy(() => f().dataSync()[0]);
/** float32 on both sides: agree to a relative 1e-5. */
const close = (got: number, expected: number) =>
  expect(Math.abs(got - expected)).toBeLessThan(1e-5 * Math.max(1, Math.abs(expected)));

/** Every entry of `actual` close to the same entry of `expected` (to `digits` decimals). */
function expectAllClose(actual: number[], expected: number[], digits: number): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < actual.length; i++) expect(actual[i], `entry ${i}`).toBeCloseTo(expected[i], digits);
}

beforeAll(() => {
  initEngine({ quiet: true });
});

describe('method losses agree with lightly on the same inputs', () => {
  it('SimSiam (NegativeCosineSimilarity, symmetrised)', () => {
    close(
      value(() => simsiamLoss(t2(p1), t2(p2), t2(z1), t2(z2))),
      fixture.simsiam,
    );
  });

  it('BYOL (normalised MSE = 2 + 2 x NegativeCosineSimilarity, symmetric)', () => {
    close(
      value(() => byolLoss(t2(p1), t2(p2), t2(z1), t2(z2))),
      fixture.byol,
    );
  });

  it('Barlow Twins (BarlowTwinsLoss)', () => {
    for (const [lambda, expected] of Object.entries(fixture.barlowTwins)) {
      close(
        value(() => barlowTwinsLoss(t2(z1), t2(z2), Number(lambda))),
        expected,
      );
    }
  });

  it('VICReg (VICRegLoss 25 / 25 / 1)', () => {
    close(
      value(() => vicregLoss(t2(z1), t2(z2), { invariance: 25, variance: 25, covariance: 1 })),
      fixture.vicreg,
    );
  });

  it('MoCo (NTXentLoss with a memory bank) and its enqueue', () => {
    for (const [temperature, expected] of Object.entries(fixture.moco)) {
      close(
        value(() => infoNceLoss(t2(p1), t2(z1), t2(queue), Number(temperature))),
        expected.loss,
      );
      const after = tf.tidy(() => {
        const out = enqueue(t2(queue), t2(z1), tf.tensor1d([6], 'int32'));
        return { queue: out.queue.arraySync(), pointer: out.pointer.dataSync()[0] };
      });
      expect(after.pointer).toBe(expected.pointerAfter);
      expectAllClose(after.queue.flat(), expected.queueAfter.flat(), 5);
    }
  });

  it('DINO (DINOLoss with an explicit teacher temperature) and its centre update', () => {
    for (const [teacherTemperature, expected] of Object.entries(fixture.dino)) {
      close(
        value(() => dinoLoss(teacher.map(t2), student.map(t2), t2(center), Number(teacherTemperature), 0.1)),
        expected.loss,
      );
      const after = tf.tidy(() => dinoCenter(t2(center), teacher.map(t2), 0.9).arraySync());
      expectAllClose(after[0], expected.centerAfter[0], 6);
    }
  });

  it('target momentum (cosine_schedule)', () => {
    const { start, end, steps, values } = fixture.momentum;
    expectAllClose(
      values.map((_, step) => momentumAt(start, end, step, steps)),
      values,
      12,
    );
  });
});
