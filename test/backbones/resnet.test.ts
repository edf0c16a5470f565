import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { type BatchNormParameters, batchNorm, relu } from '../../src/backbones/ops.js';
import { backboneNames, createBackbone } from '../../src/backbones/registry.js';
import { initEngine } from '../../src/engine/backend.js';
import { UsageError } from '../../src/util/errors.js';
import { createRng } from '../../src/util/rng.js';

beforeAll(() => {
  expect(initEngine().backend).toBe('tensorflow');
});

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function randomImages(shape: [number, number, number, number], seed: number): tf.Tensor4D {
  const rng = createRng(seed);
  const values = Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal());
  return tf.tensor4d(values, shape);
}

describe('registry', () => {
  it('lists the valid names when the name is unknown', () => {
    expect(backboneNames()).toEqual(['resnet18', 'resnet34', 'resnet50']);
    expect(() => createBackbone('resnet101')).toThrow(UsageError);
    expect(() => createBackbone('resnet101')).toThrow(
      'Unknown backbone "resnet101". Valid names: resnet18, resnet34, resnet50',
    );
  });

  it('rejects bad options with expected/received messages', () => {
    expect(() => createBackbone('resnet18', { inputChannels: 2 as 1 })).toThrow(
      'Expected 1 or 3 for inputChannels but received 2 (number)',
    );
    expect(() => createBackbone('resnet18', { stem: 'cifar' as 'small' })).toThrow(
      'Expected one of "imagenet", "small" for stem but received "cifar" (string)',
    );
    expect(() => createBackbone('resnet18', { widthMultiplier: 0 })).toThrow(
      'for widthMultiplier but received 0 (number)',
    );
  });

  it('names variables like torchvision, with kinds and feature sizes per architecture', () => {
    // torchvision's state_dict without num_batches_tracked and fc: [tensors, convs, pooled feature size].
    const counts: Record<string, [number, number, number]> = {
      resnet18: [100, 20, 512],
      resnet34: [180, 36, 512],
      resnet50: [265, 53, 2048],
    };
    for (const name of backboneNames()) {
      const b = createBackbone(name, { init: 'none' });
      const vars = b.variables();
      const names = vars.map((v) => v.name);
      expect(names).toContain('conv1.weight');
      expect(names).toContain('bn1.running_mean');
      expect(names).toContain('layer2.0.downsample.0.weight');
      expect(names).toContain('layer4.1.bn2.running_var');
      expect(vars.length).toBe(counts[name][0]);
      expect(vars.filter((v) => v.kind === 'conv').length).toBe(counts[name][1]);
      expect(b.featureDim).toBe(counts[name][2]);
      if (name === 'resnet50') expect(names).toContain('layer1.0.conv3.weight');
      const bnMean = vars.find((v) => v.name === 'bn1.running_mean')!;
      expect(bnMean.trainable).toBe(false);
      expect(vars.find((v) => v.name === 'bn1.weight')!.kind).toBe('bn-gamma');
      b.dispose();
    }
  });

  it('initializes convs Kaiming-normal (fan_out) from the seed, reproducibly', () => {
    const a = createBackbone('resnet18', { stem: 'small', widthMultiplier: 0.25, seed: 3 });
    const b = createBackbone('resnet18', { stem: 'small', widthMultiplier: 0.25, seed: 3 });
    const c = createBackbone('resnet18', { stem: 'small', widthMultiplier: 0.25, seed: 4 });
    const kernel = (m: typeof a) => m.variables().find((v) => v.name === 'layer3.0.conv1.weight')!.variable;
    const values = kernel(a).dataSync();
    expect(Array.from(values)).toEqual(Array.from(kernel(b).dataSync()));
    expect(Array.from(values)).not.toEqual(Array.from(kernel(c).dataSync()));
    const [kh, kw, , out] = kernel(a).shape;
    const std = Math.sqrt(values.reduce((s, v) => s + v * v, 0) / values.length);
    expect(std).toBeGreaterThan(0.9 * Math.sqrt(2 / (out * kh * kw)));
    expect(std).toBeLessThan(1.1 * Math.sqrt(2 / (out * kh * kw)));
    for (const m of [a, b, c]) m.dispose();
  });
});

describe('forward', () => {
  it('gives [B, D] features for each stem, channel count and width', () => {
    const small = createBackbone('resnet18', { stem: 'small', inputChannels: 1, widthMultiplier: 0.25 });
    const imagenet = createBackbone('resnet50', { widthMultiplier: 0.125 });
    const grayscale = randomImages([2, 28, 28, 1], 1);
    const rgb = randomImages([2, 64, 64, 3], 2);
    tf.tidy(() => {
      expect(small.features(grayscale, false).shape).toEqual([2, 128]);
      expect(imagenet.features(rgb, false).shape).toEqual([2, 8 * 4 * 8]);
      expect(() => small.features(rgb, false)).toThrow(
        'Expected input [B, H, W, 1] for resnet18 but received [2, 64, 64, 3]',
      );
    });
    tf.dispose([grayscale, rgb]);
    small.dispose();
    imagenet.dispose();
  });

  it('native fused BatchNorm training equals the composite formula (output, running stats, gradients)', () => {
    const x = randomImages([4, 5, 5, 3], 5);
    const make = (): BatchNormParameters => ({
      gamma: tf.variable(tf.tensor1d([1.5, 0.5, -1])),
      beta: tf.variable(tf.tensor1d([0.1, -0.2, 0.3])),
      runningMean: tf.variable(tf.tensor1d([0.5, 0, -0.5]), false),
      runningVar: tf.variable(tf.tensor1d([2, 1, 0.5]), false),
    });
    const native = make();
    const dy = randomImages([4, 5, 5, 3], 6);
    const run = (p: BatchNormParameters) =>
      tf.tidy(() => {
        const g = tf.grads((input: tf.Tensor, gamma: tf.Tensor) => {
          const q = { ...p, gamma: gamma as tf.Variable };
          return tf.mul(batchNorm(input as tf.Tensor4D, q, true), dy);
        });
        const [dx, dGamma] = g([x, p.gamma]);
        return [dx.dataSync().slice(), dGamma.dataSync().slice()];
      });
    const [nativeDx, nativeDGamma] = run(native);
    // Reference by hand: batch statistics, torch running-stat update with the unbiased variance.
    const { mean, variance } = tf.moments(x, [0, 1, 2]);
    const m = mean.dataSync();
    const v = variance.dataSync();
    const n = 4 * 5 * 5;
    const expectedMean = [0.5, 0, -0.5].map((r, c) => 0.9 * r + 0.1 * m[c]);
    const expectedVar = [2, 1, 0.5].map((r, c) => 0.9 * r + 0.1 * v[c] * (n / (n - 1)));
    expect(maxAbsDiff(native.runningMean.dataSync(), expectedMean)).toBeLessThan(1e-5);
    expect(maxAbsDiff(native.runningVar.dataSync(), expectedVar)).toBeLessThan(1e-5);
    // Gradients against tf.grads of the plain formula.
    const [refDx, refDGamma] = tf.tidy(() => {
      const f = (input: tf.Tensor, gamma: tf.Tensor) => {
        const moments = tf.moments(input, [0, 1, 2]);
        const normalized = tf.div(tf.sub(input, moments.mean), tf.sqrt(tf.add(moments.variance, 1e-5)));
        return tf.mul(tf.add(tf.mul(normalized, gamma), native.beta), dy);
      };
      const [dx, dGamma] = tf.grads(f)([x, native.gamma]);
      return [dx.dataSync().slice(), dGamma.dataSync().slice()];
    });
    expect(maxAbsDiff(nativeDx, refDx)).toBeLessThan(1e-4);
    expect(maxAbsDiff(nativeDGamma, refDGamma)).toBeLessThan(1e-4);
    expect(maxAbsDiff(nativeDGamma, new Float32Array(3))).toBeGreaterThan(1e-3); // not trivially zero
    tf.dispose([x, dy, mean, variance, native.gamma, native.beta, native.runningMean, native.runningVar]);
  });

  it('the pure-JS fallback (composite BatchNorm, tfjs ReLU) computes the same training step', () => {
    const values = randomImages([3, 6, 6, 2], 12);
    const data = values.dataSync().slice();
    values.dispose();
    const run = () =>
      tf.tidy(() => {
        const p: BatchNormParameters = {
          gamma: tf.variable(tf.tensor1d([1.2, 0.7])),
          beta: tf.variable(tf.tensor1d([0.1, -0.1])),
          runningMean: tf.variable(tf.tensor1d([0.2, -0.2]), false),
          runningVar: tf.variable(tf.tensor1d([1.5, 0.8]), false),
        };
        const x = tf.tensor4d(data, [3, 6, 6, 2]);
        const dx = tf.grad((input: tf.Tensor) => tf.sum(tf.square(relu(batchNorm(input as tf.Tensor4D, p, true)))))(x);
        const out = [dx.dataSync().slice(), p.runningMean.dataSync().slice(), p.runningVar.dataSync().slice()];
        tf.dispose([p.gamma, p.beta, p.runningMean, p.runningVar]);
        return out;
      });
    const native = run();
    tf.setBackend('cpu');
    try {
      const js = run();
      for (let i = 0; i < 3; i++) expect(maxAbsDiff(native[i], js[i])).toBeLessThan(1e-4);
    } finally {
      tf.setBackend('tensorflow');
    }
  });

  it('rejects training BatchNorm with one value per channel', () => {
    const b = createBackbone('resnet18', { stem: 'small', widthMultiplier: 0.125 });
    const x = randomImages([1, 8, 8, 3], 1);
    expect(() => tf.tidy(() => b.features(x, true))).toThrow('needs more than 1 value per channel');
    x.dispose();
    b.dispose();
  });
});

describe('training', () => {
  it('keeps the tensor count flat across 20 SGD-momentum steps, and the loss goes down', () => {
    const backbone = createBackbone('resnet18', { stem: 'small', inputChannels: 1, widthMultiplier: 0.125, seed: 1 });
    const head = tf.variable(tf.randomNormal([backbone.featureDim, 4], 0, 0.1, 'float32', 1));
    const trainable = [
      ...backbone
        .variables()
        .filter((v) => v.trainable)
        .map((v) => v.variable),
      head,
    ];
    const optimizer = tf.train.momentum(0.05, 0.9);
    const x = randomImages([8, 16, 16, 1], 9);
    const labels = tf.oneHot(tf.tensor1d([0, 1, 2, 3, 0, 1, 2, 3], 'int32'), 4);
    const step = () =>
      tf.tidy(() => {
        const { value, grads } = tf.variableGrads(
          () => tf.losses.softmaxCrossEntropy(labels, tf.matMul(backbone.features(x, true), head)),
          trainable,
        );
        optimizer.applyGradients(grads);
        return value.dataSync()[0];
      });
    const losses = [step()]; // the first step creates the optimizer's momentum slots
    const counts: number[] = [];
    for (let i = 0; i < 20; i++) {
      losses.push(step());
      counts.push(tf.memory().numTensors);
    }
    expect(new Set(counts).size).toBe(1);
    expect(losses[20]).toBeLessThan(losses[0] * 0.5);
    expect((backbone as unknown as { numBatchesTracked: number }).numBatchesTracked).toBe(21);
    // eval mode uses the updated running statistics and changes nothing
    const runningVar = backbone.variables().find((v) => v.name === 'layer1.0.bn1.running_var')!.variable;
    const before = runningVar.dataSync().slice();
    expect(Array.from(before).some((value) => Math.abs(value - 1) > 1e-3)).toBe(true);
    tf.tidy(() => backbone.features(x, false));
    expect(Array.from(runningVar.dataSync())).toEqual(Array.from(before));
    optimizer.dispose();
    tf.dispose([head, x, labels]);
    backbone.dispose();
  });
});
