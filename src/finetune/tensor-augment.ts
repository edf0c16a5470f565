/**
 * Batch augmentation on the tensor side for in-memory finetuning sets. It reads
 * the same pipeline description as the data loader (`AugmentStep[]`), draws every
 * random parameter on the host from a seeded Rng (same seed, same pixels), and
 * applies them to a whole batch [B, H, W, C] of pixels in [0, 1] with a few ops.
 *
 * Differences from the per-image host pipeline, kept small on purpose:
 * - gaussianBlur uses one sigma per batch (drawn from the range) for the images
 *   selected with probability p;
 * - colorJitter applies brightness, contrast, saturation in that order; hue is
 *   not applied (it is a no-op for grayscale data);
 * - jigsaw is not supported (a pretext-task view, not a finetuning view).
 * Synchronous: safe inside tf.tidy.
 */
import * as tf from '@tensorflow/tfjs';
import { eraseRect, sampleBox } from '../data/augment/geometry.js';
import { STEP_DEFAULTS } from '../data/augment/pipeline.js';
import type { AugmentStep, PipelineSpec } from '../data/types.js';
import { UsageError } from '../util/errors.js';
import type { Rng } from '../util/rng.js';

function perSampleMask(batch: number, p: number, rng: Rng): { mask: tf.Tensor4D; any: boolean } {
  const values = new Float32Array(batch);
  let any = false;
  for (let i = 0; i < batch; i++) {
    values[i] = rng.chance(p) ? 1 : 0;
    if (values[i]) any = true;
  }
  return { mask: tf.tensor4d(values, [batch, 1, 1, 1]), any };
}

function perSampleFactors(batch: number, values: Float32Array): tf.Tensor4D {
  return tf.tensor4d(values, [batch, 1, 1, 1]);
}

/** Luma [B, H, W, 1] (ITU-R 601, as torchvision's rgb_to_grayscale). */
function gray(x: tf.Tensor4D): tf.Tensor4D {
  if (x.shape[3] === 1) return x;
  return tf.sum(tf.mul(x, tf.tensor1d([0.299, 0.587, 0.114])), 3, true) as tf.Tensor4D;
}

/** The RandomResizedCrop draws of the per-image pipeline; the whole image when none fits. */
function cropBox(h: number, w: number, scale: [number, number], ratio: [number, number], rng: Rng): number[] {
  const box = sampleBox(w, h, scale, ratio, rng);
  return box ? [box.top, box.left, box.height, box.width] : [0, 0, h, w];
}

/**
 * cropAndResize box [y1, x1, y2, x2] that samples the pixel crop (top, left, ch, cw)
 * at `size` half-pixel centres: cropAndResize samples y1 (H - 1) .. y2 (H - 1)
 * linearly, and the crop's first and last output centres are at
 * top + ch / (2 size) - 0.5 and top + ch - ch / (2 size) - 0.5.
 */
function samplingBox(crop: number[], h: number, w: number, size: number): number[] {
  const [top, left, ch, cw] = crop;
  const edge = (start: number, extent: number, n: number): [number, number] => {
    const first = start + extent / (2 * size) - 0.5;
    const last = start + extent - extent / (2 * size) - 0.5;
    return n > 1 ? [first / (n - 1), last / (n - 1)] : [0, 0];
  };
  const [y1, y2] = edge(top, ch, h);
  const [x1, x2] = edge(left, cw, w);
  return [y1, x1, y2, x2];
}

function applyStep(x: tf.Tensor4D, step: AugmentStep, rng: Rng): tf.Tensor4D {
  const [batch, h, w] = x.shape;
  switch (step.op) {
    case 'resize':
      if (h === step.size && w === step.size) return x;
      return tf.image.resizeBilinear(x, [step.size, step.size], true);
    case 'centerCrop': {
      const top = Math.max(0, Math.floor((h - step.size) / 2));
      const left = Math.max(0, Math.floor((w - step.size) / 2));
      return tf.slice(x, [0, top, left, 0], [batch, Math.min(step.size, h), Math.min(step.size, w), -1]);
    }
    case 'randomResizedCrop': {
      const boxes: number[] = [];
      for (let i = 0; i < batch; i++) {
        const crop = cropBox(h, w, step.scale ?? [0.08, 1], step.ratio ?? [3 / 4, 4 / 3], rng);
        boxes.push(...samplingBox(crop, h, w, step.size));
      }
      return tf.image.cropAndResize(x, tf.tensor2d(boxes, [batch, 4]), tf.range(0, batch, 1, 'int32') as tf.Tensor1D, [
        step.size,
        step.size,
      ]);
    }
    case 'horizontalFlip':
    case 'verticalFlip': {
      const { mask, any } = perSampleMask(batch, step.p ?? 0.5, rng);
      if (!any) return x;
      const flipped = tf.reverse(x, step.op === 'horizontalFlip' ? 2 : 1);
      return tf.add(tf.mul(mask, flipped), tf.mul(tf.sub(1, mask), x)) as tf.Tensor4D;
    }
    case 'colorJitter': {
      const p = step.p ?? 1;
      const draw = (strength: number | undefined) => {
        const f = new Float32Array(batch).fill(1);
        if (strength) for (let i = 0; i < batch; i++) f[i] = rng.uniform(Math.max(0, 1 - strength), 1 + strength);
        return f;
      };
      const apply = new Float32Array(batch);
      for (let i = 0; i < batch; i++) apply[i] = rng.chance(p) ? 1 : 0;
      const mix = (values: Float32Array) => values.map((v, i) => (apply[i] ? v : 1));
      let y: tf.Tensor4D = x;
      if (step.brightness) {
        y = tf.clipByValue(tf.mul(y, perSampleFactors(batch, mix(draw(step.brightness)))), 0, 1) as tf.Tensor4D;
      }
      if (step.contrast) {
        const m = tf.mean(gray(y), [1, 2, 3], true);
        const f = perSampleFactors(batch, mix(draw(step.contrast)));
        y = tf.clipByValue(tf.add(tf.mul(tf.sub(y, m), f), m), 0, 1) as tf.Tensor4D;
      }
      if (step.saturation && x.shape[3] === 3) {
        const g = gray(y);
        const f = perSampleFactors(batch, mix(draw(step.saturation)));
        y = tf.clipByValue(tf.add(tf.mul(tf.sub(y, g), f), g), 0, 1) as tf.Tensor4D;
      }
      return y;
    }
    case 'randomGrayscale': {
      if (x.shape[3] === 1) return x;
      const { mask, any } = perSampleMask(batch, step.p ?? 0.1, rng);
      if (!any) return x;
      const g = tf.tile(gray(x), [1, 1, 1, 3]);
      return tf.add(tf.mul(mask, g), tf.mul(tf.sub(1, mask), x)) as tf.Tensor4D;
    }
    case 'gaussianBlur': {
      const { mask, any } = perSampleMask(batch, step.p ?? 0.5, rng);
      const [low, high] = step.sigma ?? [0.1, 2];
      const sigma = rng.uniform(low, high);
      if (!any) return x;
      const size = step.kernelSize ?? Math.max(3, 2 * Math.ceil(2 * sigma) + 1);
      const half = Math.floor(size / 2);
      const weights = Array.from({ length: 2 * half + 1 }, (_, i) =>
        Math.exp(-((i - half) ** 2) / (2 * sigma * sigma)),
      );
      const total = weights.reduce((a, b) => a + b, 0);
      const k = weights.map((v) => v / total);
      const channels = x.shape[3];
      const kx = tf.tile(tf.tensor4d(k, [1, k.length, 1, 1]), [1, 1, channels, 1]) as tf.Tensor4D;
      const ky = tf.tile(tf.tensor4d(k, [k.length, 1, 1, 1]), [1, 1, channels, 1]) as tf.Tensor4D;
      const padded = tf.mirrorPad(
        x,
        [
          [0, 0],
          [half, half],
          [half, half],
          [0, 0],
        ],
        'reflect',
      );
      const blurred = tf.depthwiseConv2d(tf.depthwiseConv2d(padded, kx, 1, 'valid'), ky, 1, 'valid');
      return tf.add(tf.mul(mask, blurred), tf.mul(tf.sub(1, mask), x)) as tf.Tensor4D;
    }
    case 'solarize': {
      const { mask, any } = perSampleMask(batch, step.p ?? STEP_DEFAULTS.solarize.p, rng);
      if (!any) return x;
      // The same 0-1 scale as the per-image pipeline (docs/data.md).
      const threshold = step.threshold ?? STEP_DEFAULTS.solarize.threshold;
      const solarized = tf.where(tf.greaterEqual(x, threshold), tf.sub(1, x), x);
      return tf.add(tf.mul(mask, solarized), tf.mul(tf.sub(1, mask), x)) as tf.Tensor4D;
    }
    case 'randomErasing': {
      const d = STEP_DEFAULTS.randomErasing;
      const erase = new Float32Array(batch * h * w);
      let any = false;
      for (let i = 0; i < batch; i++) {
        if (!rng.chance(step.p ?? d.p)) continue;
        const box = sampleBox(w, h, step.scale ?? d.scale, step.ratio ?? d.ratio, rng);
        if (!box) continue;
        eraseRect({ data: erase.subarray(i * h * w, (i + 1) * h * w), width: w, height: h, channels: 1 }, box, 1);
        any = true;
      }
      if (!any) return x;
      const m = tf.tensor4d(erase, [batch, h, w, 1]);
      return tf.add(tf.mul(x, tf.sub(1, m)), tf.mul(m, step.value ?? d.value)) as tf.Tensor4D;
    }
    case 'rotate90': {
      if (h !== w) throw new UsageError('rotate90 needs square images in finetuning views');
      const turns = Array.from({ length: batch }, () => step.k ?? rng.int(4));
      const rotations = [x];
      for (let r = 1; r < 4; r++) rotations.push(tf.reverse(tf.transpose(rotations[r - 1], [0, 2, 1, 3]), 2));
      const stacked = tf.stack(rotations, 1); // [B, 4, H, W, C]
      const flat = tf.reshape(stacked, [batch * 4, h, w, x.shape[3]]);
      return tf.gather(
        flat,
        tf.tensor1d(
          turns.map((t, i) => i * 4 + t),
          'int32',
        ),
      ) as tf.Tensor4D;
    }
    case 'normalize': {
      const c = x.shape[3];
      if (step.mean.length !== c || step.std.length !== c) {
        throw new UsageError(`normalize: mean and std need ${c} values (one per channel)`);
      }
      return tf.div(tf.sub(x, tf.tensor1d(step.mean)), tf.tensor1d(step.std)) as tf.Tensor4D;
    }
    case 'jigsaw':
      throw new UsageError('the jigsaw step is a pretext-task view and cannot be used in a finetuning view');
    default:
      throw new UsageError(`unknown augmentation op ${JSON.stringify((step as { op: unknown }).op)}`);
  }
}

/**
 * Applies `pipeline` to pixels x [B, H, W, C] in [0, 1]; returns [B, H', W', C]
 * (normalised when the pipeline ends with `normalize`). Call inside tf.tidy.
 */
export function augmentBatch(x: tf.Tensor4D, pipeline: PipelineSpec, rng: Rng): tf.Tensor4D {
  return tf.tidy(() => {
    let y = x;
    for (const step of pipeline) y = applyStep(y, step, rng);
    return y;
  });
}

/** The deterministic evaluation view: resize to `size` if needed, then normalise. */
export function evalPipeline(size: number, mean: number[], std: number[]): PipelineSpec {
  return [
    { op: 'resize', size },
    { op: 'normalize', mean, std },
  ];
}
