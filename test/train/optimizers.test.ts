import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { initEngine } from '../../src/engine/index.js';
import type { OptimizerConfig, ScheduleConfig } from '../../src/recipes/optimizer-schema.js';
import { PRETRAIN_SCHEMA } from '../../src/recipes/pretrain-schema.js';
import { defaultsOf } from '../../src/recipes/schema.js';
import { clipByGlobalNorm, createOptimizer, type TrainableParam } from '../../src/train/optimizers.js';
import { learningRateAt } from '../../src/train/schedules.js';

beforeAll(() => {
  expect(initEngine({ quiet: true }).backend).toBe('tensorflow');
});

const defaults = defaultsOf(PRETRAIN_SCHEMA) as { train: { optimizer: OptimizerConfig; schedule: ScheduleConfig } };
const config = (o: Partial<OptimizerConfig>): OptimizerConfig => ({ ...defaults.train.optimizer, ...o });

// Two parameters: a weight (decayed, adapted) and a bias (exempt), and gradients for 3 steps.
const W0 = [0.5, -1.2, 2.0, 0.3];
const B0 = [0.1, -0.4];
const GW = [
  [0.2, -0.1, 0.4, 1.0],
  [-0.3, 0.5, 0.1, -0.2],
  [0.05, 0.0, -0.6, 0.3],
];
const GB = [
  [1.0, -2.0],
  [0.5, 0.5],
  [-1.0, 0.25],
];

function runTf(cfg: OptimizerConfig, lrs: number[]): { w: number[]; b: number[] } {
  const w = tf.variable(tf.tensor1d(W0));
  const b = tf.variable(tf.tensor1d(B0));
  const params: TrainableParam[] = [
    { name: 'layer.weight', variable: w, kind: 'conv' },
    { name: 'layer.bias', variable: b, kind: 'bias' },
  ];
  const optimizer = createOptimizer(cfg, params);
  const before = tf.memory().numTensors;
  lrs.forEach((lr, t) => {
    tf.tidy(() => optimizer.apply({ 'layer.weight': tf.tensor1d(GW[t]), 'layer.bias': tf.tensor1d(GB[t]) }, lr));
  });
  expect(tf.memory().numTensors).toBe(before);
  const out = { w: Array.from(w.dataSync()), b: Array.from(b.dataSync()) };
  optimizer.dispose();
  w.dispose();
  b.dispose();
  return out;
}

/** Plain-loop reference of each update rule (PyTorch's formulas), per parameter. */
function reference(cfg: OptimizerConfig, lrs: number[]): { w: number[]; b: number[] } {
  const run = (p0: number[], grads: number[][], exempt: boolean): number[] => {
    const p = [...p0];
    const buf = p.map(() => 0);
    const m = p.map(() => 0);
    const v = p.map(() => 0);
    lrs.forEach((lr, t) => {
      const grad = grads[t];
      if (cfg.name === 'sgd') {
        for (let i = 0; i < p.length; i++) {
          const g = grad[i] + (exempt ? 0 : cfg.weightDecay * p[i]);
          buf[i] = cfg.momentum * buf[i] + g;
          const step = cfg.nesterov ? g + cfg.momentum * buf[i] : buf[i];
          p[i] -= lr * step;
        }
      } else if (cfg.name === 'adamw' || cfg.name === 'adam') {
        const [b1, b2] = cfg.betas;
        for (let i = 0; i < p.length; i++) {
          if (!exempt && cfg.name === 'adamw') p[i] *= 1 - lr * cfg.weightDecay;
          // torch.optim.Adam: L2 decay joins the gradient (and so the moments).
          const g = grad[i] + (!exempt && cfg.name === 'adam' ? cfg.weightDecay * p[i] : 0);
          m[i] = b1 * m[i] + (1 - b1) * g;
          v[i] = b2 * v[i] + (1 - b2) * g ** 2;
          const mHat = m[i] / (1 - b1 ** (t + 1));
          const vHat = v[i] / (1 - b2 ** (t + 1));
          p[i] -= (lr * mHat) / (Math.sqrt(vHat) + cfg.eps);
        }
      } else {
        const g = grad.map((x, i) => x + (exempt ? 0 : cfg.weightDecay * p[i]));
        let rate = lr;
        if (!exempt) {
          const pn = Math.sqrt(p.reduce((s, x) => s + x * x, 0));
          const gn = Math.sqrt(g.reduce((s, x) => s + x * x, 0));
          rate = pn > 0 && gn > 0 ? (lr * cfg.trustCoefficient * pn) / gn : lr;
        }
        for (let i = 0; i < p.length; i++) {
          buf[i] = cfg.momentum * buf[i] + rate * g[i];
          p[i] -= cfg.nesterov ? cfg.momentum * buf[i] + rate * g[i] : buf[i];
        }
      }
    });
    return p;
  };
  return { w: run(W0, GW, false), b: run(B0, GB, true) };
}

function expectClose(actual: number[], expected: number[]): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < actual.length; i++) expect(actual[i]).toBeCloseTo(expected[i], 5);
}

describe('optimizers against plain-loop formulas (3 steps, changing lr)', () => {
  const lrs = [0.1, 0.05, 0.2];
  const cases: Array<[string, Partial<OptimizerConfig>]> = [
    ['sgd, no momentum', { name: 'sgd', momentum: 0, weightDecay: 0.01 }],
    ['sgd momentum', { name: 'sgd', momentum: 0.9, weightDecay: 0.01 }],
    ['sgd Nesterov', { name: 'sgd', momentum: 0.9, nesterov: true, weightDecay: 0.05 }],
    ['adamw', { name: 'adamw', weightDecay: 0.1, betas: [0.9, 0.99], eps: 1e-8 }],
    ['adam', { name: 'adam', weightDecay: 0.1, betas: [0.9, 0.99], eps: 1e-8 }],
    ['lars', { name: 'lars', momentum: 0.9, weightDecay: 1e-4, trustCoefficient: 0.001 }],
    ['lars Nesterov', { name: 'lars', momentum: 0.8, nesterov: true, weightDecay: 0.01, trustCoefficient: 0.02 }],
  ];
  for (const [label, overrides] of cases) {
    it(label, () => {
      const cfg = config(overrides);
      const got = runTf(cfg, lrs);
      const want = reference(cfg, lrs);
      expectClose(got.w, want.w);
      expectClose(got.b, want.b);
    });
  }

  it('matches PyTorch 1.13 (torch.optim.SGD / Adam / AdamW, fixture from scripts/reference/torch_optimizers.py)', () => {
    const fixture = JSON.parse(readFileSync('test/train/fixtures/torch-optimizers.json', 'utf8'));
    const torchCases: Array<[string, Partial<OptimizerConfig>]> = [
      ['sgd momentum', { name: 'sgd', momentum: 0.9, weightDecay: 0.01 }],
      ['sgd Nesterov', { name: 'sgd', momentum: 0.9, nesterov: true, weightDecay: 0.05 }],
      ['adamw', { name: 'adamw', weightDecay: 0.1, betas: [0.9, 0.99], eps: 1e-8 }],
      ['adam', { name: 'adam', weightDecay: 0.1, betas: [0.9, 0.99], eps: 1e-8 }],
    ];
    for (const [name, overrides] of torchCases) {
      const got = runTf(config(overrides), fixture.lrs);
      expectClose(got.w, fixture[name].w);
      expectClose(got.b, fixture[name].b);
    }
  });

  it('weight decay skips biases and BatchNorm (zero gradient leaves them unchanged)', () => {
    const cfg = config({ name: 'sgd', momentum: 0, weightDecay: 0.5 });
    const vars = {
      conv: tf.variable(tf.tensor1d([1, 2])),
      gamma: tf.variable(tf.tensor1d([1, 2])),
      beta: tf.variable(tf.tensor1d([1, 2])),
      bias: tf.variable(tf.tensor1d([1, 2])),
    };
    const kinds = { conv: 'conv', gamma: 'bn-gamma', beta: 'bn-beta', bias: 'bias' } as const;
    const params = Object.entries(vars).map(([k, variable]) => ({
      name: k,
      variable,
      kind: kinds[k as keyof typeof kinds],
    }));
    const optimizer = createOptimizer(cfg, params);
    tf.tidy(() => optimizer.apply(Object.fromEntries(Object.keys(vars).map((k) => [k, tf.zeros([2])])), 1));
    expectClose(Array.from(vars.conv.dataSync()), [0.5, 1]);
    for (const k of ['gamma', 'beta', 'bias'] as const) expectClose(Array.from(vars[k].dataSync()), [1, 2]);
    expect(optimizer.stateVariables()).toEqual([]);
    optimizer.dispose();
    tf.dispose(Object.values(vars));
  });

  it('slot variables are named, counted and disposed', () => {
    const w = tf.variable(tf.zeros([3]));
    const before = tf.memory().numTensors;
    const optimizer = createOptimizer(config({ name: 'adamw' }), [{ name: 'w', variable: w, kind: 'conv' }]);
    expect(optimizer.stateVariables().map((s) => s.name)).toEqual(['optimizer.m.w', 'optimizer.v.w']);
    expect(tf.memory().numTensors).toBe(before + 2);
    optimizer.dispose();
    expect(tf.memory().numTensors).toBe(before);
    w.dispose();
  });
});

describe('parameter groups and state kept per parameter', () => {
  it('lrScale multiplies the learning rate of its parameter (sgd: the step is lr x scale x gradient)', () => {
    const a = tf.variable(tf.tensor1d([1, 1]));
    const b = tf.variable(tf.tensor1d([1, 1]));
    const optimizer = createOptimizer(config({ name: 'sgd', momentum: 0, weightDecay: 0 }), [
      { name: 'head', variable: a, kind: 'dense' },
      { name: 'backbone', variable: b, kind: 'conv', lrScale: 0.1 },
    ]);
    tf.tidy(() => optimizer.apply({ head: tf.tensor1d([1, 2]), backbone: tf.tensor1d([1, 2]) }, 0.5));
    expectClose(Array.from(a.dataSync()), [0.5, 0]);
    expectClose(Array.from(b.dataSync()), [0.95, 0.9]);
    optimizer.dispose();
    tf.dispose([a, b]);
  });

  it('a parameter that joins late gets bias correction from its own first update (as torch keeps state per parameter)', () => {
    const cfg = config({ name: 'adam', weightDecay: 0, betas: [0.9, 0.999], eps: 1e-8 });
    const early = tf.variable(tf.tensor1d([0]));
    const late = tf.variable(tf.tensor1d([0]));
    const optimizer = createOptimizer(cfg, [
      { name: 'early', variable: early, kind: 'dense' },
      { name: 'late', variable: late, kind: 'dense' },
    ]);
    // Three steps train `early` only (like a head-only stage), then both.
    for (let t = 0; t < 3; t++) tf.tidy(() => optimizer.apply({ early: tf.tensor1d([1]) }, 0.1));
    // A parameter not updated yet is recorded with count 0, so a run resumed here starts it from its first update.
    expect(optimizer.hostState()).toEqual({ steps: 3, paramSteps: { late: 0 } });
    expect([optimizer.updateCount('early'), optimizer.updateCount('late')]).toEqual([3, 0]);
    const resumedVariable = tf.variable(tf.tensor1d([0]));
    const resumed = createOptimizer(cfg, [{ name: 'late', variable: resumedVariable, kind: 'dense' }]);
    resumed.restoreHostState({ steps: 3, paramSteps: { late: 0 } });
    expect(resumed.updateCount('late')).toBe(0);
    resumed.dispose();
    resumedVariable.dispose();
    tf.tidy(() => optimizer.apply({ early: tf.tensor1d([1]), late: tf.tensor1d([4]) }, 0.1));
    // Adam's first update of a parameter moves it by lr (m_hat / sqrt(v_hat) = sign(g)), whatever the step count.
    expect(late.dataSync()[0]).toBeCloseTo(-0.1, 6);
    expect(optimizer.hostState()).toEqual({ steps: 4, paramSteps: { late: 1 } });
    // The counts round-trip through checkpoints' host state.
    const other = createOptimizer(cfg, [
      { name: 'early', variable: early, kind: 'dense' },
      { name: 'late', variable: late, kind: 'dense' },
    ]);
    other.restoreHostState(optimizer.hostState());
    expect(other.hostState()).toEqual({ steps: 4, paramSteps: { late: 1 } });
    // Resetting a parameter zeroes its slots and restarts its count.
    optimizer.resetState(['early']);
    expect(optimizer.hostState()).toEqual({ steps: 4, paramSteps: { early: 0, late: 1 } });
    const slot = optimizer.stateVariables().find((v) => v.name === 'optimizer.m.early')!;
    expect(Array.from(slot.variable.dataSync())).toEqual([0]);
    // An update applied elsewhere (a compiled step) is counted as apply() counts it.
    optimizer.countUpdate(['late']);
    expect(optimizer.hostState()).toEqual({ steps: 5, paramSteps: { early: 0, late: 2 } });
    optimizer.dispose();
    other.dispose();
    tf.dispose([early, late]);
  });
});

describe('gradient clipping by global norm', () => {
  it('scales to maxNorm when above, leaves alone when below', () => {
    tf.tidy(() => {
      const grads = { a: tf.tensor1d([3, 0]), b: tf.tensor1d([0, 4]) }; // norm 5
      const clipped = clipByGlobalNorm(grads, 1);
      expect(clipped.norm.dataSync()[0]).toBeCloseTo(5, 5);
      expectClose(Array.from(clipped.grads.a.dataSync()), [0.6, 0]);
      expectClose(Array.from(clipped.grads.b.dataSync()), [0, 0.8]);
      const loose = clipByGlobalNorm(grads, 10);
      expectClose(Array.from(loose.grads.b.dataSync()), [0, 4]);
      const off = clipByGlobalNorm(grads, 0);
      expect(off.grads).toBe(grads);
    });
  });
});

describe('learning-rate schedules', () => {
  const schedule = (o: Partial<ScheduleConfig>): ScheduleConfig => ({ ...defaults.train.schedule, ...o });
  const at = (s: ScheduleConfig, epoch: number, step: number, overrides = {}) =>
    learningRateAt(1, s, { epoch, step, stepsPerEpoch: 10, epochs: 5 }, overrides);

  it('linear warmup then cosine to minLr', () => {
    const s = schedule({ name: 'cosine', warmupEpochs: 1, minLr: 0.1 });
    expect(at(s, 0, 0)).toBeCloseTo(0.1, 10);
    expect(at(s, 0, 4)).toBeCloseTo(0.5, 10);
    expect(at(s, 0, 9)).toBeCloseTo(1, 10);
    expect(at(s, 1, 0)).toBeCloseTo(1, 10);
    // progress (t - 10) / 39: halfway at t = 29.5 -> check t = 29 by formula
    expect(at(s, 2, 9)).toBeCloseTo(0.1 + (0.9 * (1 + Math.cos((Math.PI * 19) / 39))) / 2, 10);
    expect(at(s, 4, 9)).toBeCloseTo(0.1, 10);
  });

  it('step schedule multiplies by gamma at each milestone', () => {
    const s = schedule({ name: 'step', milestones: [2, 4], gamma: 0.1 });
    expect(at(s, 0, 5)).toBe(1);
    expect(at(s, 2, 0)).toBeCloseTo(0.1, 12);
    expect(at(s, 4, 3)).toBeCloseTo(0.01, 12);
  });

  it('per-epoch overrides replace the schedule for the whole epoch', () => {
    const s = schedule({ name: 'cosine' });
    expect(at(s, 3, 0, { 3: 0.007 })).toBe(0.007);
    expect(at(s, 3, 9, { 3: 0.007 })).toBe(0.007);
    expect(at(s, 2, 9, { 3: 0.007 })).toBe(at(s, 2, 9));
  });

  it('constant with warmup', () => {
    const s = schedule({ name: 'constant', warmupEpochs: 0.5 });
    expect(at(s, 0, 0)).toBeCloseTo(0.2, 12);
    expect(at(s, 0, 4)).toBe(1);
    expect(at(s, 3, 3)).toBe(1);
  });
});
