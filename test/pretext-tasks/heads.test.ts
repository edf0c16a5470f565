import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { createHead, mlpBlocks } from '../../src/backbones/heads.js';
import { initEngine } from '../../src/engine/backend.js';
import { createRng } from '../../src/util/rng.js';

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('createHead', () => {
  beforeAll(() => {
    initEngine({ quiet: true });
    expect(tf.getBackend()).toBe('tensorflow');
  });

  it('names variables like an nn.Sequential and marks their kinds', () => {
    const head = createHead(mlpBlocks([6], 3), 5, createRng(1), 'projection');
    const named = head.variables().map((v) => [v.name, v.kind, v.trainable, v.variable.shape.join('x')]);
    expect(named).toEqual([
      ['head.projection.0.weight', 'dense', true, '5x6'],
      ['head.projection.0.bias', 'bias', true, '6'],
      ['head.projection.1.weight', 'bn-gamma', true, '6'],
      ['head.projection.1.bias', 'bn-beta', true, '6'],
      ['head.projection.1.running_mean', 'bn-mean', false, '6'],
      ['head.projection.1.running_var', 'bn-var', false, '6'],
      ['head.projection.3.weight', 'dense', true, '6x3'],
      ['head.projection.3.bias', 'bias', true, '3'],
    ]);
    expect(head.outputDim).toBe(3);
    head.dispose();
  });

  it('linear init is seeded and bounded by 1/sqrt(in) like nn.Linear', () => {
    const a = createHead([{ linear: 4 }], 16, createRng('w'));
    const b = createHead([{ linear: 4 }], 16, createRng('w'));
    const wa = a.variables()[0].variable.dataSync();
    expect(Array.from(b.variables()[0].variable.dataSync())).toEqual(Array.from(wa));
    expect(Math.max(...Array.from(wa).map(Math.abs))).toBeLessThanOrEqual(0.25);
    a.dispose();
    b.dispose();
  });

  it('linear without bias, BatchNorm1d (torch semantics), ReLU and L2 match plain loops', () => {
    const rng = createRng('bn');
    const [batch, dim, out] = [6, 4, 3];
    const head = createHead(
      [{ linear: out, bias: false }, { batchNorm: true }, { relu: true }, { l2normalize: true }],
      dim,
      rng,
      'h',
    );
    const vars = Object.fromEntries(head.variables().map((v) => [v.name, v.variable]));
    expect(Object.keys(vars)).not.toContain('head.h.0.bias');
    // Non-trivial gamma/beta.
    vars['head.h.1.weight'].assign(tf.tensor1d([1.5, 0.5, 2]));
    vars['head.h.1.bias'].assign(tf.tensor1d([0.1, -0.2, 0.3]));
    const x = Array.from({ length: batch }, () => Array.from({ length: dim }, () => rng.normal()));
    const w = vars['head.h.0.weight'].arraySync() as number[][];
    const gamma = [1.5, 0.5, 2];
    const beta = [0.1, -0.2, 0.3];

    // Plain loops: y = xW; BN with batch mean and biased variance; relu; l2 normalise.
    const y = x.map((row) => Array.from({ length: out }, (_, o) => row.reduce((s, v, i) => s + v * w[i][o], 0)));
    const mean = Array.from({ length: out }, (_, o) => y.reduce((s, r) => s + r[o], 0) / batch);
    const biased = Array.from({ length: out }, (_, o) => y.reduce((s, r) => s + (r[o] - mean[o]) ** 2, 0) / batch);
    const expected = y.map((r) => {
      const bn = r.map((v, o) => Math.max(0, ((v - mean[o]) / Math.sqrt(biased[o] + 1e-5)) * gamma[o] + beta[o]));
      const norm = Math.max(Math.sqrt(bn.reduce((s, v) => s + v * v, 0)), 1e-12);
      return bn.map((v) => v / norm);
    });
    const got = tf.tidy(() => head.apply(tf.tensor2d(x), true).arraySync());
    expect(maxAbsDiff(got.flat(), expected.flat())).toBeLessThan(1e-5);

    // Running statistics: 0.9 * init + 0.1 * batch statistic, unbiased variance.
    const runningMean = vars['head.h.1.running_mean'].dataSync();
    const runningVar = vars['head.h.1.running_var'].dataSync();
    expect(
      maxAbsDiff(
        runningMean,
        mean.map((m) => 0.1 * m),
      ),
    ).toBeLessThan(1e-5);
    expect(
      maxAbsDiff(
        runningVar,
        biased.map((v) => 0.9 + 0.1 * ((v * batch) / (batch - 1))),
      ),
    ).toBeLessThan(1e-5);

    // Evaluation uses the running statistics and does not change them.
    const evalExpected = y.map((r) => {
      const bn = r.map((v, o) =>
        Math.max(0, ((v - runningMean[o]) / Math.sqrt(runningVar[o] + 1e-5)) * gamma[o] + beta[o]),
      );
      const norm = Math.max(Math.sqrt(bn.reduce((s, v) => s + v * v, 0)), 1e-12);
      return bn.map((v) => v / norm);
    });
    const evalGot = tf.tidy(() => head.apply(tf.tensor2d(x), false).arraySync());
    expect(maxAbsDiff(evalGot.flat(), evalExpected.flat())).toBeLessThan(1e-5);
    expect(maxAbsDiff(vars['head.h.1.running_mean'].dataSync(), runningMean)).toBe(0);
    head.dispose();
  });

  it('rejects bad blocks and wrong input widths with clear messages', () => {
    const rng = createRng(0);
    expect(() => createHead([], 4, rng)).toThrow(
      'Expected a non-empty array of head blocks for head.head but received [] (array)',
    );
    expect(() => createHead([{ linear: 0 }], 4, rng, 'probe')).toThrow(
      'Expected a positive integer for head.probe.0.linear but received 0 (number)',
    );
    // biome-ignore lint/suspicious/noExplicitAny: a malformed block on purpose
    expect(() => createHead([{ dropout: 0.5 } as any], 4, rng)).toThrow(/Expected one of \{linear: n\}/);
    const head = createHead([{ linear: 2 }], 4, rng, 'probe');
    expect(() => tf.tidy(() => head.apply(tf.zeros([2, 3]), false))).toThrow(
      'Head probe expects [B, 4] features but received [2, 3]',
    );
    head.dispose();
  });

  it('creating and disposing a head leaves no tensors behind', () => {
    const before = tf.memory().numTensors;
    createHead(mlpBlocks([8], 2), 4, createRng(4)).dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('a training apply leaves only its output behind', () => {
    const head = createHead(mlpBlocks([8], 2), 4, createRng(3));
    const x = tf.randomNormal([5, 4], 0, 1, 'float32', 1) as tf.Tensor2D;
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) head.apply(x, true).dispose();
    expect(tf.memory().numTensors).toBe(before);
    x.dispose();
    head.dispose();
  });
});
