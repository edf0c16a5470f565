/**
 * Jigsaw puzzles — Noroozi and Favaro, "Unsupervised Learning of Visual
 * Representations by Solving Jigsaw Puzzles", ECCV 2016.
 *
 * The sentence implemented: "the network is trained to solve Jigsaw puzzles as
 * a pretext task": the image is cut into a grid of tiles, the tiles are shuffled
 * by one of a fixed set of permutations chosen for maximal Hamming distance, each
 * tile goes through the same (shared-weight) backbone, and a head on the
 * concatenated tile features predicts which permutation of the set was applied.
 *
 * The loader cuts the tiles (pipeline step `jigsaw`: a tile per grid cell at a
 * random offset, so neighbouring tiles do not share edges); this task permutes
 * them. Permuting the tile features is the same as permuting the tiles before
 * the backbone (every tile is encoded on its own), and cheaper.
 */
import * as tf from '@tensorflow/tfjs';
import { createNamedHead, mlpBlocks } from '../src/backbones/heads.js';
import type { Head } from '../src/backbones/types.js';
import type { PipelineSpec } from '../src/data/types.js';
import { invalidOption, UsageError } from '../src/util/errors.js';
import { normalizeStep } from './augmentations.js';
import { accuracyFromLogits, crossEntropyFromLogits } from './losses.js';
import { checkBoolean, checkInteger, checkOneOf, checkRange, optionKey, validatorFor } from './options.js';
import { maximalHammingPermutations, maxPermutationCount } from './permutations.js';
import type { InputSpec, PretextTask } from './types.js';

export interface JigsawOptions {
  /** Tiles per side: 3 (the paper's 3x3 puzzle) or 2 (for small images). */
  grid: 2 | 3;
  /** Size of the permutation set, i.e. the number of classes (paper: 100 to 1000). */
  permutationCount: number;
  /** Seed of the permutation set (the set is part of the task: keep it fixed). */
  permutationSeed: number;
  /** Tile side in px; 'auto' is 64/75 of a grid cell, as the paper's 64 px tiles in 75 px cells. */
  tileSize: number | 'auto';
  /** Hidden width of the head on the concatenated tile features. */
  hiddenDim: number;
  /** Normalise each tile to zero mean and unit variance (the paper does, against low-level shortcuts). */
  normalizeTiles: boolean;
  /** Scale range of the random resized crop taken before cutting tiles. */
  cropScale: [number, number];
}

export interface JigsawHeads {
  classifier: Head;
}

export const JIGSAW_DEFAULTS: Readonly<JigsawOptions> = Object.freeze({
  grid: 3 as const,
  permutationCount: 100,
  permutationSeed: 0,
  tileSize: 'auto' as const,
  hiddenDim: 512,
  normalizeTiles: true,
  cropScale: [0.6, 1] as [number, number],
});

/** Tile side and the cell each tile is cut from, for an input size. */
export function jigsawGeometry(options: JigsawOptions, inputSize: number): { cell: number; tileSize: number } {
  const cell = Math.floor(inputSize / options.grid);
  const tileSize = options.tileSize === 'auto' ? Math.max(1, Math.round((cell * 64) / 75)) : options.tileSize;
  if (tileSize > cell) {
    throw invalidOption(
      optionKey('tileSize'),
      `at most ${cell} px (${inputSize} px input / grid ${options.grid})`,
      tileSize,
    );
  }
  return { cell, tileSize };
}

/**
 * Row indices that reorder tile features [B*T, D] so that image b's tiles come
 * in the order of permutation `chosen[b]`: row b*T + j holds tile perm[j].
 */
export function permutedTileRows(permutations: number[][], chosen: Int32Array, tiles: number): Int32Array {
  const rows = new Int32Array(chosen.length * tiles);
  for (let b = 0; b < chosen.length; b++) {
    const permutation = permutations[chosen[b]];
    for (let j = 0; j < tiles; j++) rows[b * tiles + j] = b * tiles + permutation[j];
  }
  return rows;
}

/** Zero mean, unit variance per tile. [N, h, w, C] -> [N, h, w, C]. */
export function normalizePerTile(tiles: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const { mean, variance } = tf.moments(tiles, [1, 2, 3], true); // [N, 1, 1, 1]
    return tf.div(tf.sub(tiles, mean), tf.sqrt(tf.add(variance, 1e-5))) as tf.Tensor4D;
  });
}

export const jigsawTask: PretextTask<JigsawOptions, JigsawHeads> = {
  id: 'jigsaw',
  paper:
    'Noroozi & Favaro, "Unsupervised Learning of Visual Representations by Solving Jigsaw Puzzles", ECCV 2016: ' +
    '"the network is trained to solve Jigsaw puzzles as a pretext task" — predict which of a set of maximally distant permutations shuffled the tiles.',
  defaults: JIGSAW_DEFAULTS,
  optionDocs: {
    grid: 'Tiles per side: 3 (default, the paper) or 2 (small images).',
    permutationCount:
      'Number of permutations = classes, integer from 2 to grid²! (default 100; the paper uses 100-1000; generating 1000 of 9 tiles takes a few seconds, once per process).',
    permutationSeed:
      'Seed of the permutation set, integer >= 0 (default 0). Part of the task: keep it fixed across runs.',
    tileSize: 'Tile side in px, or "auto" (default: 64/75 of a grid cell, e.g. 8 px at 28 px input and grid 3).',
    hiddenDim: 'Hidden width of the MLP head on the concatenated tile features, integer >= 1 (default 512).',
    normalizeTiles: 'Normalise every tile to zero mean, unit variance (default true).',
    cropScale: 'Area range [low, high] within [0.05, 1] of the random resized crop before tiling (default [0.6, 1]).',
  },
  validate: validatorFor(JIGSAW_DEFAULTS, (merged) => {
    const grid = checkOneOf('grid', merged.grid, [2, 3] as const);
    const tiles = grid * grid;
    const tileSize = merged.tileSize;
    if (tileSize !== 'auto' && !(typeof tileSize === 'number' && Number.isInteger(tileSize) && tileSize >= 1)) {
      throw invalidOption(optionKey('tileSize'), 'an integer >= 1 or "auto"', tileSize);
    }
    return {
      grid,
      permutationCount: checkInteger('permutationCount', merged.permutationCount, 2, maxPermutationCount(tiles)),
      permutationSeed: checkInteger('permutationSeed', merged.permutationSeed, 0),
      tileSize: tileSize as number | 'auto',
      hiddenDim: checkInteger('hiddenDim', merged.hiddenDim, 1, 65536),
      normalizeTiles: checkBoolean('normalizeTiles', merged.normalizeTiles),
      cropScale: checkRange('cropScale', merged.cropScale, 0.05, 1),
    };
  }),
  views(options, input: InputSpec): PipelineSpec[] {
    const { cell, tileSize } = jigsawGeometry(options, input.size);
    const slack = cell - tileSize;
    return [
      [
        { op: 'randomResizedCrop', size: input.size, scale: options.cropScale, ratio: [3 / 4, 4 / 3] },
        { op: 'jigsaw', grid: options.grid, tileSize, gap: 0, jitter: slack },
        normalizeStep(input),
      ],
    ];
  },
  createHeads(options, featureDim, rng) {
    const tiles = options.grid * options.grid;
    const blocks = mlpBlocks([options.hiddenDim], options.permutationCount);
    return { classifier: createNamedHead('classifier', blocks, tiles * featureDim, rng) };
  },
  headModules(heads) {
    return { classifier: heads.classifier };
  },
  step(ctx, options) {
    const tilesView = ctx.views[0]; // [B, T, h, w, C]
    const tiles = options.grid * options.grid;
    if (tilesView.rank !== 5 || tilesView.shape[1] !== tiles) {
      throw new UsageError(
        `jigsaw expects a [B, ${tiles}, h, w, C] tile view but received [${tilesView.shape.join(', ')}]`,
      );
    }
    const [batch, , height, width, channels] = tilesView.shape;
    const set = maximalHammingPermutations(tiles, options.permutationCount, options.permutationSeed);
    const chosen = new Int32Array(batch);
    for (let b = 0; b < batch; b++) chosen[b] = ctx.rng.int(options.permutationCount);

    let flat = tf.reshape(tilesView, [batch * tiles, height, width, channels]) as tf.Tensor4D; // [B*T, h, w, C]
    if (options.normalizeTiles) flat = normalizePerTile(flat);
    const features = ctx.backbone.features(flat, ctx.training); // [B*T, D]
    const featureDim = features.shape[1];
    const rows = tf.tensor1d(permutedTileRows(set.permutations, chosen, tiles), 'int32');
    const puzzle = tf.reshape(tf.gather(features, rows), [batch, tiles * featureDim]) as tf.Tensor2D; // [B, T*D]
    const logits = ctx.heads.classifier.apply(puzzle, ctx.training); // [B, P]
    const labels = tf.tensor1d(chosen, 'int32');
    const embeddings = tf.mean(tf.reshape(features, [batch, tiles, featureDim]), 1) as tf.Tensor2D; // [B, D]
    return {
      loss: crossEntropyFromLogits(logits, labels),
      metrics: { accuracy: accuracyFromLogits(logits, labels) },
      embeddings,
    };
  },
};
