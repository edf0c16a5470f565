/**
 * Runs a backbone over every image of a source and collects the pooled
 * features: the first half of `selfsup embed`.
 */
import { createForwardPass, DEFAULT_INFERENCE, type InferenceSetting } from '../backbones/inference-graph.js';
import type { Backbone } from '../backbones/types.js';
import { runPipeline } from '../data/augment/pipeline.js';
import { evalView } from '../data/augment/presets.js';
import type { ImageSource, InputSpec } from '../data/types.js';
import type { EmbeddingRows } from '../export/embeddings.js';
import { assertInteger } from '../util/errors.js';
import { createRng } from '../util/rng.js';

export interface EmbedImagesOptions {
  /** Images per forward pass, 1..4096. Default 128. */
  batchSize?: number;
  /** Restrict to these source indices (default: all). */
  subset?: Int32Array;
  /** Called after every batch with the images done so far and the total. */
  onProgress?: (done: number, total: number) => void;
  /** The compiled forward pass where it can run, else eager (default: DEFAULT_INFERENCE, float32). */
  inference?: InferenceSetting;
  /** Called once with the line saying which forward pass runs and why. */
  onForwardPath?: (reason: string) => void;
}

/** An image that could not be decoded; it is skipped, never silently. */
export interface EmbedFailure {
  index: number;
  path: string;
  reason: string;
}

export interface EmbeddedImages extends EmbeddingRows {
  failures: EmbedFailure[];
}

/**
 * Pooled features [N, D] of every readable image of `source` (eval mode: BatchNorm
 * running statistics) through the evaluation view of `preprocess`. Unreadable images are listed in `failures` and left out.
 */
export async function embedImages(
  backbone: Backbone,
  source: ImageSource,
  preprocess: InputSpec,
  options: EmbedImagesOptions = {},
): Promise<EmbeddedImages> {
  const batchSize = assertInteger('batchSize', options.batchSize ?? 128, 1, 4096);
  const order = options.subset ?? Int32Array.from({ length: source.size }, (_, i) => i);
  const total = order.length;
  const spec = evalView(preprocess);
  // The pipeline has no random step; the stream is only there to satisfy its signature.
  const rng = createRng('embed');
  const dim = backbone.featureDim;
  const pixels = preprocess.size * preprocess.size * preprocess.channels;
  const indices: number[] = [];
  const chunks: Float32Array[] = [];
  const failures: EmbedFailure[] = [];
  const forward = createForwardPass(backbone, undefined, options.inference ?? DEFAULT_INFERENCE);
  options.onForwardPath?.(forward.path.reason);
  try {
    for (let start = 0; start < total; start += batchSize) {
      const batchIndices = Array.from(order.subarray(start, Math.min(total, start + batchSize)));
      const loaded = await Promise.all(
        batchIndices.map(async (index) => {
          try {
            const image = await source.load(index, preprocess.channels);
            return { index, view: runPipeline(image, spec, rng) };
          } catch (e) {
            failures.push({ index, path: source.describe(index), reason: (e as Error).message });
            return undefined;
          }
        }),
      );
      const good = loaded.filter((x): x is NonNullable<typeof x> => x !== undefined);
      if (good.length > 0) {
        const input = new Float32Array(good.length * pixels); // [b, S, S, C]
        good.forEach((g, i) => {
          input.set(g.view.data, i * pixels);
        });
        const shape: [number, number, number, number] = [
          good.length,
          preprocess.size,
          preprocess.size,
          preprocess.channels,
        ];
        chunks.push(forward.run(input, shape).features); // [b * D]
        for (const g of good) indices.push(g.index);
      }
      options.onProgress?.(Math.min(total, start + batchSize), total);
    }
  } finally {
    forward.dispose();
  }
  const vectors = new Float32Array(indices.length * dim);
  let offset = 0;
  for (const chunk of chunks) {
    vectors.set(chunk, offset);
    offset += chunk.length;
  }
  failures.sort((a, b) => a.index - b.index);
  return {
    indices: Int32Array.from(indices),
    paths: indices.map((i) => source.describe(i)),
    labels: source.labels ? Int32Array.from(indices, (i) => source.labels![i]) : undefined,
    classNames: source.classNames,
    vectors,
    dim,
    failures,
  };
}
