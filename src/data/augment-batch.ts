/**
 * Turning decoded images into one batch's views. Shared by the in-process path
 * and the worker threads, so both give identical pixels: image i's view v uses
 * the stream rng(seed).derive('epoch', e, 'sample', index, 'view', v), whatever
 * thread runs it and whatever ran before.
 */
import { createRng } from '../util/rng.js';
import { runPipeline } from './augment/pipeline.js';
import type { PipelineSpec, RawImage } from './types.js';

export interface AugmentJob {
  seed: string;
  epoch: number;
  views: PipelineSpec[];
  /** Per-image output shape of each view (from validatePipeline). */
  shapes: number[][];
  /** Source index of each image (names its random stream). */
  indices: number[];
  images: RawImage[];
}

export interface AugmentResult {
  /** One [B, ...shape] float array per view. */
  views: Float32Array[];
  milliseconds: number;
}

export function runAugmentJob(job: AugmentJob): AugmentResult {
  const started = performance.now();
  const root = createRng(job.seed);
  const count = job.images.length;
  const views = job.views.map((spec, v) => {
    const perImage = job.shapes[v].reduce((a, b) => a * b, 1);
    const out = new Float32Array(perImage * count);
    for (let b = 0; b < count; b++) {
      const rng = root.derive('epoch', job.epoch, 'sample', job.indices[b], 'view', v);
      const view = runPipeline(job.images[b], spec, rng);
      if (view.data.length !== perImage) {
        throw new Error(
          `view ${v} produced shape [${view.shape.join(', ')}] for source index ${job.indices[b]}, expected [${job.shapes[v].join(', ')}]`,
        );
      }
      out.set(view.data, b * perImage);
    }
    return out;
  });
  return { views, milliseconds: performance.now() - started };
}
