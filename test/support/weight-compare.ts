/**
 * Comparing the weights after a compiled step with those after the eager step
 * (test/train/compiled-step.test.ts, compiled-two-view.test.ts): snapshots of the
 * mirrored variables and their momentum buffers, and error measures between them.
 */
import * as tf from '@tensorflow/tfjs';
import type { MirroredVariable } from '../../src/train/compiled-step.js';

/** Copies of every variable's values (and momentum buffers, as `momentum:<name>`). */
export const snapshot = (vars: MirroredVariable[]) =>
  new Map(
    vars.flatMap((v) => [
      [v.name, v.variable.dataSync().slice() as Float32Array],
      ...(v.momentum ? [[`momentum:${v.name}`, v.momentum.dataSync().slice() as Float32Array] as const] : []),
    ]),
  );

/** Puts the values of a {@link snapshot} back. */
export function restore(vars: MirroredVariable[], values: Map<string, Float32Array>) {
  tf.tidy(() => {
    for (const v of vars) {
      v.variable.assign(tf.tensor(values.get(v.name)!, v.variable.shape));
      if (v.momentum) v.momentum.assign(tf.tensor(values.get(`momentum:${v.name}`)!, v.momentum.shape));
    }
  });
}

/**
 * Worst relative L2 error of the updates, ||(after_c - before) - (after_e - before)|| / ||after_e - before||,
 * over the tensors the step changes.
 */
export function worstUpdateError(
  before: Map<string, Float32Array>,
  compiled: Map<string, Float32Array>,
  eager: Map<string, Float32Array>,
): { worst: string; value: number } {
  let worst = '';
  let value = 0;
  for (const [name, x0] of before) {
    const c = compiled.get(name)!;
    const e = eager.get(name)!;
    let error = 0;
    let reference = 0;
    for (let i = 0; i < x0.length; i++) {
      error += (c[i] - e[i]) ** 2;
      reference += (e[i] - x0[i]) ** 2;
    }
    if (reference === 0) continue;
    const relative = Math.sqrt(error / reference);
    if (relative > value) {
      value = relative;
      worst = name;
    }
  }
  return { worst, value };
}

/** Cosine between the compiled and the eager update of all tensors whose name passes `keep`, as one vector. */
export function updateCosine(
  before: Map<string, Float32Array>,
  compiled: Map<string, Float32Array>,
  eager: Map<string, Float32Array>,
  keep: (name: string) => boolean,
): number {
  let dot = 0;
  let compiledNorm = 0;
  let eagerNorm = 0;
  for (const [name, x0] of before) {
    if (!keep(name)) continue;
    const c = compiled.get(name)!;
    const e = eager.get(name)!;
    for (let i = 0; i < x0.length; i++) {
      dot += (c[i] - x0[i]) * (e[i] - x0[i]);
      compiledNorm += (c[i] - x0[i]) ** 2;
      eagerNorm += (e[i] - x0[i]) ** 2;
    }
  }
  return dot / Math.sqrt(compiledNorm * eagerNorm);
}

/** Per tensor, the largest entry difference over the tensor's largest entry (at least 1e-3); the worst tensor. */
export function maxRelativeDifference(
  a: Map<string, Float32Array>,
  b: Map<string, Float32Array>,
): { worst: string; value: number } {
  let worst = '';
  let value = 0;
  for (const [name, x] of a) {
    const y = b.get(name)!;
    let diff = 0;
    let scale = 1e-3;
    for (let i = 0; i < x.length; i++) {
      diff = Math.max(diff, Math.abs(x[i] - y[i]));
      scale = Math.max(scale, Math.abs(y[i]));
    }
    if (diff / scale > value) {
      value = diff / scale;
      worst = name;
    }
  }
  return { worst, value };
}

/**
 * Worst relative L2 residual of the EMA identity over `pairs` (target name, online name): two paths
 * that both move a target by t <- m t + (1 - m) online leave targets that differ by exactly (1 - m)
 * times their online weights' difference, ||(t_c - t_e) - (1 - m)(o_c - o_e)|| / ||t_e - t_0||.
 */
export function worstEmaResidual(
  pairs: Array<{ target: string; online: string }>,
  m: number,
  targets: { before: Map<string, Float32Array>; compiled: Map<string, Float32Array>; eager: Map<string, Float32Array> },
  online: { compiled: Map<string, Float32Array>; eager: Map<string, Float32Array> },
): { worst: string; value: number } {
  let worst = '';
  let value = 0;
  for (const pair of pairs) {
    const [t0, tc, te] = [targets.before, targets.compiled, targets.eager].map((s) => s.get(pair.target)!);
    const [oc, oe] = [online.compiled, online.eager].map((s) => s.get(pair.online)!);
    let residual = 0;
    let move = 0;
    for (let i = 0; i < t0.length; i++) {
      residual += (tc[i] - te[i] - (1 - m) * (oc[i] - oe[i])) ** 2;
      move += (te[i] - t0[i]) ** 2;
    }
    const relative = Math.sqrt(residual / move);
    if (relative > value) {
      value = relative;
      worst = pair.target;
    }
  }
  return { worst, value };
}
