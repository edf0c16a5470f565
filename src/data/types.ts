/**
 * Contracts of the data layer (shared with training, pretext tasks, finetuning).
 * Pixel layout everywhere is HWC (NHWC for batches), as TensorFlow.js expects.
 */

/** A decoded image: 8-bit, HWC, 1 (grayscale) or 3 (sRGB) channels. */
export interface RawImage {
  data: Uint8Array;
  width: number;
  height: number;
  channels: 1 | 3;
}

/** Random-access images, optionally labelled. Index order is stable. */
export interface ImageSource {
  readonly size: number;
  /** Class index per image (-1 = unlabeled), when the source has labels. */
  readonly labels?: Int32Array;
  readonly classNames?: string[];
  /** Decodes image `index` as `channels` channels (resize happens in the pipeline). */
  load(index: number, channels: 1 | 3): Promise<RawImage>;
  /** A human name for error messages and reports: a path, or `file.idx#123`. */
  describe(index: number): string;
}

/**
 * What a network takes as input: square images of `size` px with `channels`
 * channels, normalised per channel with `mean` and `std` (on the 0-1 scale).
 * Pretraining, finetuning, probes and `embed` all describe their input with it.
 */
export interface InputSpec {
  /** Side length of the (square) network input in px. */
  size: number;
  channels: 1 | 3;
  /** Per-channel normalisation, applied as the last pipeline step (1 value or one per channel). */
  mean: number[];
  std: number[];
}

/** One augmentation step, described as data (recipes hold these). */
export type AugmentStep =
  | { op: 'resize'; size: number }
  | { op: 'centerCrop'; size: number }
  | { op: 'randomResizedCrop'; size: number; scale?: [number, number]; ratio?: [number, number] }
  /**
   * torchvision RandomCrop(size, padding, fill): pad every side by `padding` px of
   * `fill` (0-1 scale, every channel), then a size x size crop at a uniform offset
   * (top first, then left); no resampling. The CIFAR "translate by up to 4 px".
   */
  | { op: 'randomCrop'; size: number; padding?: number; fill?: number }
  | { op: 'horizontalFlip'; p?: number }
  | { op: 'verticalFlip'; p?: number }
  | {
      op: 'colorJitter';
      p?: number;
      brightness?: number;
      contrast?: number;
      saturation?: number;
      hue?: number;
    }
  | { op: 'randomGrayscale'; p?: number }
  | { op: 'gaussianBlur'; p?: number; sigma?: [number, number]; kernelSize?: number }
  | { op: 'solarize'; p?: number; threshold?: number }
  /**
   * Random erasing / Cutout (Zhong et al., 2017; DeVries & Taylor, 2017): with probability p,
   * one rectangle of area fraction in `scale` and aspect ratio (log-uniform) in `ratio`
   * is filled with `value` (0-1 scale, every channel).
   */
  | { op: 'randomErasing'; p?: number; scale?: [number, number]; ratio?: [number, number]; value?: number }
  /**
   * torchvision RandomAffine, with probability p (default 1): rotation uniform in
   * [-degrees, degrees], translation up to translate[0] x width and translate[1] x height
   * pixels, zoom uniform in `scale`, x-shear uniform in [-shear, shear] degrees, about the
   * image centre; bilinear, `fill` (0-1 scale, default 0) outside the source. Size unchanged.
   */
  | {
      op: 'randomAffine';
      p?: number;
      degrees: number;
      translate?: [number, number];
      scale?: [number, number];
      shear?: number;
      fill?: number;
    }
  /** Rotate by k*90 degrees; `k` fixed, or random in {0,1,2,3} when omitted. */
  | { op: 'rotate90'; k?: 0 | 1 | 2 | 3 }
  /**
   * Cut the image into grid x grid tiles of `tileSize` px, each taken from its
   * cell with a random offset of up to `jitter` px inside a cell shrunk by `gap` px.
   * Output shape becomes [grid*grid, tileSize, tileSize, C] in row-major tile order.
   */
  | { op: 'jigsaw'; grid: number; tileSize: number; gap?: number; jitter?: number }
  /** (x/255 - mean) / std per channel; the last step of every pipeline. */
  | { op: 'normalize'; mean: number[]; std: number[] };

export type PipelineSpec = AugmentStep[];

/** The float output of a pipeline for one image. */
export interface ViewData {
  data: Float32Array;
  /** [H, W, C], or [T, h, w, C] after a jigsaw step. */
  shape: number[];
}

/** A batch: one stacked float array per requested view. */
export interface Batch {
  /** Indices into the source. */
  indices: Int32Array;
  labels?: Int32Array;
  /** views[v].shape = [B, ...per-image shape]. */
  views: ViewData[];
}

export interface LoaderOptions {
  batchSize: number;
  /** One pipeline per view to produce for each image (SimCLR: two). */
  views: PipelineSpec[];
  channels: 1 | 3;
  seed: string | number;
  /** Epoch number: selects the shuffle order and the augmentation draws. */
  epoch: number;
  shuffle?: boolean;
  dropLast?: boolean;
  /** Skip this many batches at the start (resume mid-epoch). */
  startBatch?: number;
  /** Restrict to these source indices (a split). */
  subset?: Int32Array;
  /** Worker threads for decode + augment (default: cores - 1, at least 1). */
  workers?: number;
  /** Batches prepared ahead (default 2). */
  prefetch?: number;
  /** Keep decoded, resized images in memory up to this side length (small-image datasets). */
  cacheSize?: number;
}

export interface LoaderStats {
  batches: number;
  images: number;
  /** Total milliseconds the consumer waited for a batch. */
  waitMs: number;
  /** Milliseconds spent producing batches (decode + augment), summed over workers. */
  produceMs: number;
}
