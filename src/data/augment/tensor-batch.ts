/**
 * The tensor executor of the augmentation specs: runs a pipeline on a batch of
 * pixels [B, H, W, C] in [0, 1] (in-memory finetuning sets). It has the same
 * meaning as the per-image executor (pipeline.ts): image i of the batch draws
 * from the stream rng.derive('sample', i) exactly what the per-image executor
 * draws for one image, and every op computes the same function (resampling with
 * the same filter as matrix products, colour jitter in the drawn order
 * including hue, blur with the same kernel and reflect padding). The
 * conformance test (test/data/tensor-batch.test.ts) holds the two within 1e-4.
 *
 * jigsaw is not supported here (a pretext-task view whose output is not one
 * image). Synchronous: safe inside tf.tidy.
 */
import * as tf from '@tensorflow/tfjs';
import { UsageError } from '../../util/errors.js';
import type { Rng } from '../../util/rng.js';
import type { AugmentStep, PipelineSpec } from '../types.js';
import {
  type ColorJitterDraw,
  defaultBlurKernel,
  drawColorJitter,
  gaussianKernel,
  LUMA_B,
  LUMA_G,
  LUMA_R,
  reflectIndex,
} from './color.js';
import { affineSampling, drawAffine, randomCropOffset, randomResizedCropBox, sampleBox } from './geometry.js';
import { resampleMatrix } from './image.js';
import { STEP_DEFAULTS } from './pipeline.js';

/** The random stream of each image of a batch. */
export function sampleRngs(rng: Rng, batch: number): Rng[] {
  return Array.from({ length: batch }, (_, i) => rng.derive('sample', i));
}

/** 1 where `chosen[i]`, as [B, 1, 1, 1]. */
function maskOf(chosen: boolean[]): tf.Tensor4D {
  return tf.tensor4d(
    chosen.map((c) => (c ? 1 : 0)),
    [chosen.length, 1, 1, 1],
  );
}

/** Per image: `a` where chosen, `b` elsewhere. */
function choose(chosen: boolean[], a: tf.Tensor4D, b: tf.Tensor4D): tf.Tensor4D {
  const m = maskOf(chosen);
  return tf.add(tf.mul(m, a), tf.mul(tf.sub(1, m), b)) as tf.Tensor4D;
}

function perImage(values: number[]): tf.Tensor4D {
  return tf.tensor4d(values, [values.length, 1, 1, 1]);
}

/**
 * Y[b] = R[b] X[b] C[b]^T per channel: rows [B * outH * H] and columns
 * [B * outW * W] row-major matrices. Resize, crops and blur are all this.
 */
function separable(x: tf.Tensor4D, rows: Float32Array, outH: number, cols: Float32Array, outW: number): tf.Tensor4D {
  const [b, h, w, c] = x.shape;
  const vertical = tf.matMul(tf.tensor3d(rows, [b, outH, h]), tf.reshape(x, [b, h, w * c])); // [B, outH, W*C]
  const turned = tf.transpose(tf.reshape(vertical, [b, outH, w, c]), [0, 2, 1, 3]); // [B, W, outH, C]
  const horizontal = tf.matMul(tf.tensor3d(cols, [b, outW, w]), tf.reshape(turned, [b, w, outH * c])); // [B, outW, outH*C]
  return tf.transpose(tf.reshape(horizontal, [b, outW, outH, c]), [0, 2, 1, 3]) as tf.Tensor4D;
}

function repeated(matrix: Float32Array, times: number): Float32Array {
  const out = new Float32Array(matrix.length * times);
  for (let i = 0; i < times; i++) out.set(matrix, i * matrix.length);
  return out;
}

function identity(n: number): Float32Array {
  const out = new Float32Array(n * n);
  for (let i = 0; i < n; i++) out[i * n + i] = 1;
  return out;
}

/** The 1-D Gaussian blur with reflect padding as an [n, n] matrix. */
function blurMatrix(n: number, kernel: Float32Array): Float32Array {
  const radius = (kernel.length - 1) >> 1;
  const out = new Float32Array(n * n);
  for (let o = 0; o < n; o++) {
    for (let k = 0; k < kernel.length; k++) out[o * n + reflectIndex(o + k - radius, n)] += kernel[k];
  }
  return out;
}

/** Luma [B, H, W, 1] (the per-image executor's weights); 1-channel images are their own gray. */
function gray(x: tf.Tensor4D): tf.Tensor4D {
  if (x.shape[3] === 1) return x;
  return tf.sum(tf.mul(x, tf.tensor1d([LUMA_R, LUMA_G, LUMA_B])), 3, true) as tf.Tensor4D;
}

const clip01 = (x: tf.Tensor): tf.Tensor4D => tf.clipByValue(x, 0, 1) as tf.Tensor4D;

/** Hue rotation by `shift` turns per image ([B, 1, 1, 1]) through HSV; gray pixels stay as they are. */
function shiftHue(x: tf.Tensor4D, shift: tf.Tensor4D): tf.Tensor4D {
  const [r, g, b] = tf.split(x, 3, 3);
  const max = tf.maximum(tf.maximum(r, g), b);
  const chroma = tf.sub(max, tf.minimum(tf.minimum(r, g), b));
  const colored = tf.greater(chroma, 0);
  const safe = tf.where(colored, chroma, tf.onesLike(chroma));
  // Hue in sixths of a turn, by which channel is the largest (r first on ties, then g).
  const sixths = tf.where(
    tf.equal(max, r),
    tf.div(tf.sub(g, b), safe),
    tf.where(tf.equal(max, g), tf.add(tf.div(tf.sub(b, r), safe), 2), tf.add(tf.div(tf.sub(r, g), safe), 4)),
  );
  const turns = tf.add(tf.div(sixths, 6), shift);
  const hue = tf.sub(turns, tf.floor(turns)); // [0, 1)
  // HSV -> RGB: channel n (R 5, G 3, B 1) is max - chroma * clip(min(k, 4 - k), 0, 1), k = (n + 6 hue) mod 6.
  const channel = (n: number) => {
    const raw = tf.add(tf.mul(hue, 6), n);
    const k = tf.sub(raw, tf.mul(tf.floor(tf.div(raw, 6)), 6));
    return tf.sub(max, tf.mul(chroma, tf.clipByValue(tf.minimum(k, tf.sub(4, k)), 0, 1)));
  };
  const rotated = tf.concat([channel(5), channel(3), channel(1)], 3);
  return tf.where(tf.tile(colored, [1, 1, 1, 3]), rotated, x) as tf.Tensor4D;
}

/** Colour jitter with each image's own order and factors (see drawColorJitter). */
function colorJitterBatch(x: tf.Tensor4D, draws: Array<ColorJitterDraw | null>): tf.Tensor4D {
  const color = x.shape[3] === 3;
  const factor = (d: ColorJitterDraw | null, which: number): number | null =>
    d === null ? null : [d.brightness, d.contrast, d.saturation, d.hue][which];
  const adjust = [
    (y: tf.Tensor4D, f: tf.Tensor4D) => clip01(tf.mul(y, f)),
    (y: tf.Tensor4D, f: tf.Tensor4D) =>
      clip01(tf.add(tf.mul(y, f), tf.mul(tf.sub(1, f), tf.mean(gray(y), [1, 2, 3], true)))),
    (y: tf.Tensor4D, f: tf.Tensor4D) => (color ? clip01(tf.add(tf.mul(y, f), tf.mul(tf.sub(1, f), gray(y)))) : y),
    (y: tf.Tensor4D, f: tf.Tensor4D) => (color ? shiftHue(y, f) : y),
  ];
  let y = x;
  for (let slot = 0; slot < 4; slot++) {
    for (let which = 0; which < 4; which++) {
      const chosen = draws.map((d) => d !== null && d.order[slot] === which && factor(d, which) !== null);
      if (!chosen.some(Boolean)) continue;
      const f = perImage(draws.map((d) => factor(d, which) ?? (which === 3 ? 0 : 1)));
      y = choose(chosen, adjust[which](y, f), y);
    }
  }
  return y;
}

/** `streams()` gives each image's Rng; deterministic steps never ask for it. */
function applyStep(x: tf.Tensor4D, step: AugmentStep, streams: () => Rng[]): tf.Tensor4D {
  const [batch, h, w, channels] = x.shape;
  const chances = (p: number) => streams().map((rng) => rng.chance(p));
  switch (step.op) {
    case 'resize': {
      // torchvision Resize(int): the shorter side becomes `size`, the aspect ratio is kept.
      if (Math.min(w, h) === step.size) return x;
      const outW = w <= h ? step.size : Math.max(1, Math.floor((step.size * w) / h));
      const outH = w <= h ? Math.max(1, Math.floor((step.size * h) / w)) : step.size;
      return separable(
        x,
        repeated(resampleMatrix(0, h, outH, h), batch),
        outH,
        repeated(resampleMatrix(0, w, outW, w), batch),
        outW,
      );
    }
    case 'centerCrop': {
      // Zero-padded where the image is smaller, as torchvision.
      const size = step.size;
      const top = Math.round((h - size) / 2);
      const left = Math.round((w - size) / 2);
      const pad = [Math.max(0, -top), Math.max(0, top + size - h), Math.max(0, -left), Math.max(0, left + size - w)];
      const padded = pad.some((p) => p > 0)
        ? tf.pad(x, [
            [0, 0],
            [pad[0], pad[1]],
            [pad[2], pad[3]],
            [0, 0],
          ])
        : x;
      return tf.slice(padded, [0, top + pad[0], left + pad[2], 0], [batch, size, size, channels]);
    }
    case 'randomResizedCrop': {
      const { size } = step;
      const rows = new Float32Array(batch * size * h);
      const cols = new Float32Array(batch * size * w);
      streams().forEach((rng, i) => {
        const d = STEP_DEFAULTS.randomResizedCrop;
        const box = randomResizedCropBox(w, h, step.scale ?? d.scale, step.ratio ?? d.ratio, rng);
        rows.set(resampleMatrix(box.top, box.height, size, h), i * size * h);
        cols.set(resampleMatrix(box.left, box.width, size, w), i * size * w);
      });
      return separable(x, rows, size, cols, size);
    }
    case 'randomCrop': {
      // Pad with the fill, then each image's rows and columns picked by index (exact, no resampling).
      const d = STEP_DEFAULTS.randomCrop;
      const { size } = step;
      const padding = step.padding ?? d.padding;
      const rows = new Int32Array(batch * size);
      const cols = new Int32Array(batch * size);
      streams().forEach((rng, i) => {
        const { top, left } = randomCropOffset(w, h, size, padding, rng);
        for (let k = 0; k < size; k++) {
          rows[i * size + k] = top + padding + k;
          cols[i * size + k] = left + padding + k;
        }
      });
      const padded =
        padding > 0
          ? tf.pad(
              x,
              [
                [0, 0],
                [padding, padding],
                [padding, padding],
                [0, 0],
              ],
              step.fill ?? d.fill,
            )
          : x;
      const picked = tf.gather(padded, tf.tensor2d(rows, [batch, size], 'int32'), 1, 1); // [B, size, W + 2p, C]
      return tf.gather(picked, tf.tensor2d(cols, [batch, size], 'int32'), 2, 1) as tf.Tensor4D; // [B, size, size, C]
    }
    case 'horizontalFlip':
    case 'verticalFlip': {
      const chosen = chances(step.p ?? STEP_DEFAULTS.flipP);
      if (!chosen.some(Boolean)) return x;
      return choose(chosen, tf.reverse(x, step.op === 'horizontalFlip' ? 2 : 1), x);
    }
    case 'colorJitter': {
      const strengths = { ...STEP_DEFAULTS.colorJitter, ...step };
      const draws = streams().map((rng) => (rng.chance(strengths.p) ? drawColorJitter(strengths, rng) : null));
      return colorJitterBatch(x, draws);
    }
    case 'randomGrayscale': {
      const chosen = chances(step.p ?? STEP_DEFAULTS.randomGrayscale.p);
      if (channels === 1 || !chosen.some(Boolean)) return x;
      return choose(chosen, tf.tile(gray(x), [1, 1, 1, 3]) as tf.Tensor4D, x);
    }
    case 'gaussianBlur': {
      const [low, high] = step.sigma ?? STEP_DEFAULTS.gaussianBlur.sigma;
      const kernelSize = step.kernelSize ?? defaultBlurKernel(w, h);
      const sigmas = streams().map((rng) =>
        rng.chance(step.p ?? STEP_DEFAULTS.gaussianBlur.p) ? rng.uniform(low, high) : null,
      );
      if (sigmas.every((s) => s === null)) return x;
      const rows = new Float32Array(batch * h * h);
      const cols = new Float32Array(batch * w * w);
      sigmas.forEach((sigma, i) => {
        const kernel = sigma === null ? null : gaussianKernel(sigma, kernelSize);
        rows.set(kernel ? blurMatrix(h, kernel) : identity(h), i * h * h);
        cols.set(kernel ? blurMatrix(w, kernel) : identity(w), i * w * w);
      });
      return separable(x, rows, h, cols, w);
    }
    case 'solarize': {
      const chosen = chances(step.p ?? STEP_DEFAULTS.solarize.p);
      if (!chosen.some(Boolean)) return x;
      const threshold = step.threshold ?? STEP_DEFAULTS.solarize.threshold;
      return choose(chosen, tf.where(tf.greaterEqual(x, threshold), tf.sub(1, x), x) as tf.Tensor4D, x);
    }
    case 'randomErasing': {
      const d = STEP_DEFAULTS.randomErasing;
      const erase = new Float32Array(batch * h * w);
      let any = false;
      streams().forEach((rng, i) => {
        if (!rng.chance(step.p ?? d.p)) return;
        // None found in 10 draws: the image is left as it is.
        const box = sampleBox(w, h, step.scale ?? d.scale, step.ratio ?? d.ratio, rng);
        if (!box) return;
        for (let y = box.top; y < box.top + box.height; y++) {
          erase.fill(1, i * h * w + y * w + box.left, i * h * w + y * w + box.left + box.width);
        }
        any = true;
      });
      if (!any) return x;
      const m = tf.tensor4d(erase, [batch, h, w, 1]);
      return tf.add(tf.mul(x, tf.sub(1, m)), tf.mul(m, step.value ?? d.value)) as tf.Tensor4D;
    }
    case 'randomAffine': {
      // Each output pixel mixes four gathered source pixels (affineSampling); the row after the
      // batch's pixels holds the fill. Images not chosen take their own pixel with weight 1.
      const d = STEP_DEFAULTS.randomAffine;
      const n = h * w;
      const index = new Int32Array(batch * n * 4);
      const weight = new Float32Array(batch * n * 4);
      let any = false;
      streams().forEach((rng, i) => {
        const base = i * n * 4;
        if (!rng.chance(step.p ?? d.p)) {
          for (let o = 0; o < n; o++) {
            index.fill(i * n + o, base + 4 * o, base + 4 * o + 4);
            weight[base + 4 * o] = 1;
          }
          return;
        }
        const sampling = affineSampling(w, h, drawAffine(w, h, step, rng));
        for (let k = 0; k < 4 * n; k++) index[base + k] = sampling.index[k] < 0 ? batch * n : i * n + sampling.index[k];
        weight.set(sampling.weight, base);
        any = true;
      });
      if (!any) return x;
      const flat = tf.concat([tf.reshape(x, [batch * n, channels]), tf.fill([1, channels], step.fill ?? d.fill)], 0);
      const picked = tf.reshape(tf.gather(flat, tf.tensor1d(index, 'int32')), [batch * n, 4, channels]);
      const mixed = tf.sum(tf.mul(picked, tf.tensor3d(weight, [batch * n, 4, 1])), 1);
      return tf.reshape(mixed, [batch, h, w, channels]) as tf.Tensor4D;
    }
    case 'rotate90': {
      const turns = step.k === undefined ? streams().map((rng) => rng.int(4)) : new Array<number>(batch).fill(step.k);
      if (turns.every((t) => t === 0)) return x;
      if (h !== w) throw new UsageError(`rotate90 on a batch needs square images (got ${h}x${w})`);
      // Counter-clockwise quarter turns: transpose H and W, then reverse the rows.
      const rotations = [x];
      for (let r = 1; r < 4; r++) rotations.push(tf.reverse(tf.transpose(rotations[r - 1], [0, 2, 1, 3]), 1));
      const flat = tf.reshape(tf.stack(rotations, 1), [batch * 4, h, w, channels]); // [B*4, H, W, C]
      const picks = tf.tensor1d(
        turns.map((t, i) => i * 4 + t),
        'int32',
      );
      return tf.gather(flat, picks) as tf.Tensor4D;
    }
    case 'normalize': {
      const perChannel = (v: number[]) => (v.length === 1 ? new Array(channels).fill(v[0]) : v);
      if (![step.mean, step.std].every((v) => v.length === 1 || v.length === channels)) {
        throw new UsageError(`normalize: mean and std need 1 or ${channels} values (one per channel)`);
      }
      return tf.div(tf.sub(x, tf.tensor1d(perChannel(step.mean))), tf.tensor1d(perChannel(step.std))) as tf.Tensor4D;
    }
    case 'jigsaw':
      throw new UsageError('the jigsaw step is a pretext-task view and cannot run on a batch of tensors');
    default:
      throw new UsageError(`unknown augmentation op ${JSON.stringify((step as { op: unknown }).op)}`);
  }
}

/**
 * Applies `pipeline` to pixels x [B, H, W, C] in [0, 1]; returns [B, H', W', C]
 * (normalised when the pipeline ends with `normalize`). Image i draws from
 * rng.derive('sample', i). Synchronous; leaves only the result behind.
 */
export function augmentTensorBatch(x: tf.Tensor4D, pipeline: PipelineSpec, rng: Rng): tf.Tensor4D {
  let rngs: Rng[] | undefined;
  const streams = () => {
    rngs ??= sampleRngs(rng, x.shape[0]);
    return rngs;
  };
  return tf.tidy(() => {
    let y = x;
    for (const step of pipeline) y = applyStep(y, step, streams);
    return y === x ? tf.clone(x) : y;
  });
}
