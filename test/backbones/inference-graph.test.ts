/**
 * The evaluation-mode forward pass as a compiled graph against the eager one:
 * same features and logits (float32 within 1e-4), BatchNorm with running
 * statistics, and the fallback line when the graph cannot run.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHead } from '../../src/backbones/heads.js';
import { chooseInferencePath, createForwardPass, InferenceGraph } from '../../src/backbones/inference-graph.js';
import { ResNet } from '../../src/backbones/resnet.js';
import { cpuBfloat16Features, graphRuntimeStatus } from '../../src/engine/graph-runtime.js';
import { initEngine } from '../../src/engine/index.js';
import { createRng } from '../../src/util/rng.js';

beforeAll(() => {
  expect(initEngine({ quiet: true }).backend).toBe('tensorflow');
});

const status = graphRuntimeStatus();

/** Largest |a - b| over max(|b|) (so small entries are judged against the tensor's scale). */
function relativeError(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff / scale;
}

describe.skipIf(!status.available)('inference graph (graph addon)', () => {
  const rng = createRng(7);
  const backbone = status.available
    ? new ResNet({ arch: 'resnet18', inputChannels: 3, widthMultiplier: 0.125, stem: 'small' }, 'kaiming', rng)
    : undefined;
  const head = backbone
    ? createHead([{ linear: 16 }, { relu: true }, { linear: 5 }], backbone.featureDim, rng.derive('head'), 'classifier')
    : undefined;
  const shape: [number, number, number, number] = [6, 16, 16, 3];
  const images = Float32Array.from({ length: 6 * 16 * 16 * 3 }, () => rng.uniform(-1, 1));
  afterAll(() => {
    head?.dispose();
    backbone?.dispose();
  });

  // Running statistics that are not the initial 0/1, so evaluation mode is tested.
  beforeAll(() => {
    tf.tidy(() => {
      for (let i = 0; i < 3; i++) backbone!.features(tf.tensor4d(images, shape).mul(1 + i), true);
    });
  });

  it('gives the eager features, logits and probabilities (float32, within 1e-4)', () => {
    const eager = createForwardPass(backbone!, head, { compile: 'off', precision: 'float32' });
    const graph = createForwardPass(backbone!, head, { compile: 'on', precision: 'float32' });
    expect(graph).toBeInstanceOf(InferenceGraph);
    expect(graph.path.reason).toBe('compiled graph, float32 (precision)');
    expect(eager.path.reason).toBe('eager forward pass, float32 (compile is off)');
    const tensors = tf.memory().numTensors;
    try {
      const e = eager.run(images, shape);
      const g = graph.run(images, shape);
      const again = graph.run(images, shape);
      expect(tf.memory().numTensors).toBe(tensors);
      expect(g.features.length).toBe(6 * backbone!.featureDim);
      expect(relativeError(g.features, e.features)).toBeLessThan(1e-4);
      expect(relativeError(g.logits!, e.logits!)).toBeLessThan(1e-4);
      expect(relativeError(g.probabilities!, e.probabilities!)).toBeLessThan(1e-4);
      expect(Array.from(again.features)).toEqual(Array.from(g.features));
      // A batch of another size through the same graph.
      const one = graph.run(images.subarray(0, 16 * 16 * 3), [1, 16, 16, 3]);
      expect(relativeError(one.features, e.features.subarray(0, backbone!.featureDim))).toBeLessThan(1e-4);
    } finally {
      eager.dispose();
      graph.dispose();
    }
  });

  it('also for ResNet-50 with the ImageNet stem, features only', () => {
    const big = new ResNet(
      { arch: 'resnet50', inputChannels: 1, widthMultiplier: 0.125, stem: 'imagenet' },
      'kaiming',
      createRng(8),
    );
    const input = Float32Array.from({ length: 2 * 32 * 32 }, () => rng.uniform(-1, 1));
    const eager = createForwardPass(big, undefined, { compile: 'off', precision: 'float32' });
    const graph = createForwardPass(big, undefined, { compile: 'on', precision: 'float32' });
    try {
      const e = eager.run(input, [2, 32, 32, 1]);
      const g = graph.run(input, [2, 32, 32, 1]);
      expect(g.logits).toBeUndefined();
      expect(relativeError(g.features, e.features)).toBeLessThan(1e-4);
    } finally {
      eager.dispose();
      graph.dispose();
      big.dispose();
    }
  });

  it.skipIf(cpuBfloat16Features().length === 0)('stays within bfloat16 rounding with precision bfloat16', () => {
    const eager = createForwardPass(backbone!, head, { compile: 'off', precision: 'float32' });
    const graph = createForwardPass(backbone!, head, { compile: 'on', precision: 'bfloat16' });
    try {
      const e = eager.run(images, shape);
      const g = graph.run(images, shape);
      // 8 significant bits per product, through 17 layers: a few percent of the features' scale.
      expect(relativeError(g.features, e.features)).toBeLessThan(0.05);
      expect(relativeError(g.probabilities!, e.probabilities!)).toBeLessThan(0.05);
    } finally {
      eager.dispose();
      graph.dispose();
    }
  });

  it('an MLP head with BatchNorm (running statistics) gives the eager logits (float32, within 1e-4)', () => {
    const mlp = createHead(
      [{ linear: 12 }, { batchNorm: true }, { relu: true }, { linear: 4 }],
      backbone!.featureDim,
      rng.derive('mlp'),
      'mlp',
    );
    // Running statistics away from 0/1: a few training-mode passes.
    tf.tidy(() => {
      const features = backbone!.features(tf.tensor4d(images, shape), false);
      for (let i = 0; i < 3; i++) mlp.apply(features.mul(1 + i), true);
    });
    const eager = createForwardPass(backbone!, mlp, { compile: 'off', precision: 'float32' });
    const graph = createForwardPass(backbone!, mlp, { compile: 'on', precision: 'float32' });
    try {
      const e = eager.run(images, shape);
      const g = graph.run(images, shape);
      expect(relativeError(g.logits!, e.logits!)).toBeLessThan(1e-4);
      expect(relativeError(g.probabilities!, e.probabilities!)).toBeLessThan(1e-4);
    } finally {
      eager.dispose();
      graph.dispose();
      mlp.dispose();
    }
  });

  it("an L2-normalising head with a weight-normalised last layer (DINO's) gives the eager output (float32, within 1e-4)", () => {
    const dinoLike = createHead(
      [{ linear: 8 }, { l2normalize: true }, { linear: 6, bias: false, normalizedWeight: true }],
      backbone!.featureDim,
      rng,
      'dino',
    );
    const eager = createForwardPass(backbone!, dinoLike, { compile: 'off', precision: 'float32' });
    const graph = createForwardPass(backbone!, dinoLike, { compile: 'on', precision: 'float32' });
    try {
      const e = eager.run(images, shape);
      const g = graph.run(images, shape);
      expect(relativeError(g.logits!, e.logits!)).toBeLessThan(1e-4);
    } finally {
      eager.dispose();
      graph.dispose();
      dinoLike.dispose();
    }
  });

  it('falls back to eager with one line saying why, and refuses what cannot be had', () => {
    const mlp = createHead([{ linear: 8 }], backbone!.featureDim, rng, 'mlp');
    // A head of the caller's own, not built from block specs.
    const { blocks: _, ...opaque } = mlp;
    try {
      expect(chooseInferencePath(backbone!, opaque).reason).toBe(
        'eager forward pass, float32 (the head is not built from block specs)',
      );
      expect(() => chooseInferencePath(backbone!, opaque, { compile: 'on', precision: 'float32' })).toThrow(
        'compile is on but the forward pass cannot be compiled: the head is not built from block specs',
      );
      expect(() => chooseInferencePath(backbone!, undefined, { compile: 'off', precision: 'bfloat16' })).toThrow(
        'precision bfloat16 needs the compiled forward pass, which this run cannot use (compile is off); use float32 or auto',
      );
      expect(chooseInferencePath(backbone!, undefined).reason).toBe('compiled graph, float32 (precision)');
    } finally {
      mlp.dispose();
    }
  });
});
