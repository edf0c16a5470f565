import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { EngineError, gpuBackendError, initEngine, resolveBackendPreference } from '../../src/engine/backend.js';
import { convSpeedCheck, formatDoctorReport, runDoctor } from '../../src/engine/doctor.js';
import { GPU_PACKAGE, gpuSystemProblem } from '../../src/engine/native.js';

/** Max |a - b| over all elements. */
function maxAbsDiff(a: Float32Array | Int32Array | Uint8Array, b: Float32Array | Int32Array | Uint8Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** conv2d forward and its gradients w.r.t. input and filter, on the active backend. */
function convAndGrads(x: Float32Array, w: Float32Array, dy: Float32Array) {
  return tf.tidy(() => {
    const xt = tf.tensor4d(x, [2, 9, 9, 3]);
    const wt = tf.tensor4d(w, [3, 3, 3, 4]);
    const dyt = tf.tensor4d(dy, [2, 5, 5, 4]);
    const f = (a: tf.Tensor4D, b: tf.Tensor4D) => tf.conv2d(a, b, 2, 'same');
    const y = f(xt, wt);
    const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => f(a as tf.Tensor4D, b as tf.Tensor4D))([xt, wt], dyt);
    return { y: y.dataSync().slice(), dx: dx.dataSync().slice(), dw: dw.dataSync().slice() };
  });
}

describe('engine', () => {
  it('runs on native TensorFlow (a silent fall back to pure JS fails here)', () => {
    const info = initEngine();
    expect(tf.getBackend()).toBe('tensorflow');
    expect(info.native).toBe(true);
    expect(info.provider).toMatch(/^@tensorflow\/tfjs-node/);
    expect(info.tensorflowVersion).toMatch(/^2\.\d+\.\d+/);
    expect(info.intraOpThreads).toBeGreaterThan(0);
  });

  it('conv2d forward and both gradients match the pure-JS backend within 1e-4', () => {
    initEngine();
    const rand = (n: number, seed: number) => {
      const out = new Float32Array(n);
      let s = seed;
      for (let i = 0; i < n; i++) {
        s = (s * 1103515245 + 12345) % 2147483648;
        out[i] = s / 2147483648 - 0.5;
      }
      return out;
    };
    const x = rand(2 * 9 * 9 * 3, 1);
    const w = rand(3 * 3 * 3 * 4, 2);
    const dy = rand(2 * 5 * 5 * 4, 3);
    const native = convAndGrads(x, w, dy);
    tf.setBackend('cpu');
    try {
      expect(tf.getBackend()).toBe('cpu');
      const js = convAndGrads(x, w, dy);
      expect(maxAbsDiff(native.y, js.y)).toBeLessThan(1e-4);
      expect(maxAbsDiff(native.dx, js.dx)).toBeLessThan(1e-4);
      expect(maxAbsDiff(native.dw, js.dw)).toBeLessThan(1e-4);
      // and the values are not trivially zero
      expect(Math.max(...native.dw.map(Math.abs))).toBeGreaterThan(1e-3);
    } finally {
      tf.setBackend('tensorflow');
    }
    expect(tf.getBackend()).toBe('tensorflow');
  });

  it('loads the native package SELFSUP_NATIVE_PACKAGE names (default @tensorflow/tfjs-node)', () => {
    const info = initEngine();
    // With the GPU package installed and a GPU visible, auto mode prefers it.
    if (!info.gpu) expect(info.provider).toBe(process.env.SELFSUP_NATIVE_PACKAGE || '@tensorflow/tfjs-node');
    expect(info.runtime?.package).toBe(info.provider);
    expect(info.runtime?.cudaBuild).toBe(info.provider === GPU_PACKAGE);
  });

  it.runIf(process.env.SELFSUP_NATIVE_PACKAGE === GPU_PACKAGE)(
    'the GPU package is a CUDA build with CUDA and cuDNN found next to it; without a GPU it says why',
    async () => {
      const info = initEngine();
      expect(info.runtime?.cuda?.found).toBe(true);
      expect(info.runtime?.cudnn?.found).toBe(true);
      expect(info.runtime?.cuda?.version).toMatch(/^\d+\.\d+/);
      const report = await runDoctor({ skipSpeed: true });
      const text = formatDoctorReport(report);
      expect(text).toMatch(/CUDA build +yes: CUDA runtime \d/);
      if (!info.gpu) {
        expect(info.gpuProblem).toBeTruthy();
        expect(text).toContain(`GPU                none used: ${info.gpuProblem}`);
      }
    },
  );

  it('a "gpu" backend that cannot work fails with one line saying why', () => {
    const why = gpuSystemProblem() ?? 'TensorFlow found no usable GPU';
    const err = gpuBackendError(why);
    expect(err).toBeInstanceOf(EngineError);
    expect(err.message).toBe(`backend "gpu" was asked for but no GPU works: ${why}`);
    expect(err.message).not.toContain('\n');
  });

  it('rejects an unknown backend preference with the expected/received message', () => {
    expect(() => resolveBackendPreference('tpu')).toThrow(EngineError);
    expect(() => resolveBackendPreference('tpu')).toThrow(
      'Expected one of auto, gpu, cpu, js for option --backend but received "tpu"',
    );
  });

  it('speed check reports a positive GFLOP/s figure and leaks no tensors', () => {
    initEngine();
    const before = tf.memory().numTensors;
    const s = convSpeedCheck(0.2, 2, 14, 8);
    expect(s.iterations).toBeGreaterThanOrEqual(2);
    // The figure is the counted work over the measured time: 2 FLOPs per multiply-add of a 3x3 conv.
    const flops = 2 * 2 * 14 * 14 * 8 * 8 * 3 * 3 * s.iterations;
    expect(s.gflops).toBeCloseTo(flops / s.seconds / 1e9, 6);
    expect(s.seconds).toBeGreaterThanOrEqual(0.2);
    expect(tf.memory().numTensors).toBe(before);
  });
});
