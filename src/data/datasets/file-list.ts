/** An ImageSource over a list of image files (with optional labels): the base of the file datasets. */
import { type DecodeOptions, decodeImage } from '../decode.js';
import type { ImageSource, RawImage } from '../types.js';

/**
 * An ImageSource that can also decode at reduced size (shrink-on-load), which the
 * loader uses for its cache of small images. Optional: a source without it is
 * resized on the host instead.
 */
export interface ResizableImageSource extends ImageSource {
  /** Decodes image `index` with its shorter side at most `maxShorterSide` px. */
  loadResized(index: number, channels: 1 | 3, maxShorterSide: number): Promise<RawImage>;
}

export function isResizable(source: ImageSource): source is ResizableImageSource {
  return typeof (source as Partial<ResizableImageSource>).loadResized === 'function';
}

/** Image files on disk, decoded with sharp on its thread pool. */
export class FileListSource implements ResizableImageSource {
  readonly size: number;
  readonly labels?: Int32Array;
  readonly classNames?: string[];

  /**
   * @param paths absolute paths, one per image
   * @param labels class index per image (-1 = unlabeled), or undefined
   * @param classNames names of the class indices
   */
  constructor(
    readonly paths: string[],
    labels?: Int32Array,
    classNames?: string[],
    private readonly decodeOptions: DecodeOptions = {},
  ) {
    this.size = paths.length;
    if (labels && labels.length !== paths.length) {
      throw new Error(`FileListSource: ${labels.length} labels for ${paths.length} paths`);
    }
    this.labels = labels;
    this.classNames = classNames;
  }

  load(index: number, channels: 1 | 3): Promise<RawImage> {
    return decodeImage(this.pathOf(index), channels, this.decodeOptions);
  }

  loadResized(index: number, channels: 1 | 3, maxShorterSide: number): Promise<RawImage> {
    return decodeImage(this.pathOf(index), channels, { ...this.decodeOptions, maxShorterSide });
  }

  describe(index: number): string {
    return this.paths[index] ?? `index ${index} (out of range 0..${this.size - 1})`;
  }

  private pathOf(index: number): string {
    if (!Number.isInteger(index) || index < 0 || index >= this.size) {
      throw new RangeError(`image index ${index} out of range 0..${this.size - 1}`);
    }
    return this.paths[index];
  }
}

/** Class names sorted, and each label's index into them. */
export function indexLabels(names: string[]): { labels: Int32Array; classNames: string[] } {
  const unique = [...new Set(names.filter((n) => n !== ''))];
  const numeric = unique.every((n) => /^-?\d+$/.test(n));
  unique.sort(numeric ? (a, b) => Number(a) - Number(b) : undefined);
  const position = new Map(unique.map((name, i) => [name, i]));
  const labels = new Int32Array(names.length);
  names.forEach((name, i) => {
    labels[i] = name === '' ? -1 : position.get(name)!;
  });
  return { labels, classNames: unique };
}
