/**
 * IDX files (the MNIST family: MNIST, Fashion-MNIST, KMNIST, EMNIST), gzipped or
 * not. Images are unsigned bytes [N, H, W] (magic 0x00000803); labels [N]
 * (magic 0x00000801). Everything is held in memory.
 */

import { existsSync } from 'node:fs';
import path from 'node:path';
import { gunzipSync, constants as zlibConstants } from 'node:zlib';
import { InputError } from '../../util/errors.js';
import { describeLimit, readRegularFile, readRegularTextFile } from '../../util/files.js';
import type { ImageSource, RawImage } from '../types.js';

export const FASHION_MNIST_CLASSES = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
];

export interface IdxArray {
  /** Dimension sizes, e.g. [60000, 28, 28]. */
  shape: number[];
  data: Uint8Array;
}

/** Largest IDX data read (decompressed): 1 GiB. EMNIST ByClass, the largest of the family, is 0.55 GB. */
export const MAX_IDX_BYTES = 1024 * 1024 * 1024;

export interface ReadIdxOptions {
  /** Largest decompressed size accepted, header included (default MAX_IDX_BYTES). */
  maxBytes?: number;
}

function parseHeader(file: string, bytes: Buffer, total: number | null): { shape: number[]; header: number } {
  if (bytes.length < 4 || bytes[0] !== 0 || bytes[1] !== 0) {
    throw new InputError(file, 'not an IDX file (the first two bytes must be 0)');
  }
  if (bytes[2] !== 0x08) {
    throw new InputError(
      file,
      `IDX element type 0x${bytes[2].toString(16)} is not supported (only unsigned bytes, 0x08)`,
    );
  }
  const dims = bytes[3];
  const header = 4 + 4 * dims;
  if (dims < 1 || bytes.length < header) {
    throw new InputError(file, `truncated IDX header${total === null ? '' : ` (${total} bytes)`}`);
  }
  const shape: number[] = [];
  for (let d = 0; d < dims; d++) shape.push(bytes.readUInt32BE(4 + 4 * d));
  return { shape, header };
}

function checkLimit(file: string, shape: number[], header: number, maxBytes: number, gzipped: boolean): number {
  const count = shape.reduce((a, b) => a * b, 1);
  if (header + count > maxBytes) {
    throw new InputError(
      file,
      `shape [${shape.join(', ')}] declares ${header + count} bytes${gzipped ? ' once decompressed' : ''}, over the limit of ${describeLimit(maxBytes)}`,
    );
  }
  return count;
}

/**
 * Reads an IDX file of unsigned bytes (gzipped when the file starts with 1f 8b).
 * Only a regular file is opened. A gzipped file is decompressed in two steps:
 * first its header (from the first 4 KiB of compressed data), whose declared
 * shape is checked against `maxBytes`, then the data, capped at exactly the
 * declared size, so a small file that inflates to gigabytes is refused without
 * allocating them.
 */
export function readIdx(file: string, options: ReadIdxOptions = {}): IdxArray {
  const maxBytes = options.maxBytes ?? MAX_IDX_BYTES;
  let bytes = readRegularFile(file, { maxBytes, what: 'IDX file' });
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) {
    let head: Buffer;
    try {
      head = gunzipSync(bytes.subarray(0, 4096), {
        finishFlush: zlibConstants.Z_SYNC_FLUSH,
        maxOutputLength: 8 * 1024 * 1024,
      });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ERR_BUFFER_TOO_LARGE') {
        throw new InputError(file, `corrupt gzip data (${(e as Error).message})`);
      }
      head = Buffer.alloc(0);
    }
    if (head.length >= 4 + 4 * (head[3] ?? 0)) {
      const { shape, header } = parseHeader(file, head, null);
      const count = checkLimit(file, shape, header, maxBytes, true);
      try {
        bytes = gunzipSync(bytes, { maxOutputLength: Math.max(1, header + count) });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
          throw new InputError(
            file,
            `decompresses to more than the ${header + count} bytes its shape [${shape.join(', ')}] declares`,
          );
        }
        throw new InputError(file, `corrupt gzip data (${(e as Error).message})`);
      }
    } else {
      // Less than a header in the first 4 KiB: a tiny (truncated) file, or not IDX data.
      try {
        bytes = gunzipSync(bytes, { maxOutputLength: 1024 });
      } catch (e) {
        const tooLarge = (e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE';
        throw new InputError(
          file,
          tooLarge ? 'no IDX header in the first 4 KiB of gzip data' : `corrupt gzip data (${(e as Error).message})`,
        );
      }
    }
  }
  const { shape, header } = parseHeader(file, bytes, bytes.length);
  const count = checkLimit(file, shape, header, maxBytes, false);
  if (bytes.length < header + count) {
    throw new InputError(
      file,
      `truncated: shape [${shape.join(', ')}] needs ${header + count} bytes, file has ${bytes.length}`,
    );
  }
  return { shape, data: new Uint8Array(bytes.buffer, bytes.byteOffset + header, count) };
}

/** An in-memory IDX image set, optionally with labels. */
export class IdxSource implements ImageSource {
  readonly size: number;
  readonly labels?: Int32Array;
  readonly classNames?: string[];
  readonly height: number;
  readonly width: number;
  private readonly pixels: Uint8Array;

  constructor(
    private readonly imagesFile: string,
    images: IdxArray,
    labels?: IdxArray,
    classNames?: string[],
  ) {
    if (images.shape.length !== 3) {
      throw new InputError(imagesFile, `expected images of shape [N, H, W], got [${images.shape.join(', ')}]`);
    }
    [this.size, this.height, this.width] = images.shape;
    this.pixels = images.data;
    if (labels) {
      if (labels.shape.length !== 1 || labels.shape[0] !== this.size) {
        throw new InputError(
          imagesFile,
          `labels of shape [${labels.shape.join(', ')}] do not match ${this.size} images`,
        );
      }
      this.labels = Int32Array.from(labels.data);
      const classes = Math.max(...this.labels) + 1;
      this.classNames = classNames ?? Array.from({ length: classes }, (_, i) => String(i));
    }
  }

  async load(index: number, channels: 1 | 3): Promise<RawImage> {
    if (!Number.isInteger(index) || index < 0 || index >= this.size) {
      throw new RangeError(`image index ${index} out of range 0..${this.size - 1}`);
    }
    const pixels = this.width * this.height;
    const gray = this.pixels.subarray(index * pixels, (index + 1) * pixels);
    if (channels === 1) return { data: gray.slice(), width: this.width, height: this.height, channels: 1 };
    const data = new Uint8Array(pixels * 3);
    for (let p = 0; p < pixels; p++) data[3 * p] = data[3 * p + 1] = data[3 * p + 2] = gray[p];
    return { data, width: this.width, height: this.height, channels: 3 };
  }

  describe(index: number): string {
    return `${this.imagesFile}#${index}`;
  }
}

/**
 * Opens an IDX image file and, optionally, its label file.
 * @param classNames names for the label values (e.g. FASHION_MNIST_CLASSES)
 */
export function idxDataset(imagesFile: string, labelsFile?: string, classNames?: string[]): IdxSource {
  const images = readIdx(imagesFile);
  const labels = labelsFile ? readIdx(labelsFile) : undefined;
  return new IdxSource(imagesFile, images, labels, classNames);
}

/**
 * Class names from a `classes.txt` (one per line, in label order) beside an IDX
 * file or one folder up; undefined when there is none. Only a regular file of at
 * most 1 MiB is read.
 */
export function classNamesNear(file: string): string[] | undefined {
  for (const dir of [path.dirname(file), path.dirname(path.dirname(file))]) {
    const candidate = path.join(dir, 'classes.txt');
    if (!existsSync(candidate)) continue;
    const names = readRegularTextFile(candidate, { maxBytes: 1024 * 1024, what: 'class names file' })
      .split(/\r?\n/)
      .map((line) => line.trim())
      .filter(Boolean);
    if (names.length > 0) return names;
  }
  return undefined;
}

/** Encodes [N, ...] unsigned bytes as an (uncompressed) IDX file's bytes. */
export function encodeIdx(shape: number[], data: Uint8Array): Uint8Array {
  const header = Buffer.alloc(4 + 4 * shape.length);
  header[2] = 0x08;
  header[3] = shape.length;
  shape.forEach((n, d) => {
    header.writeUInt32BE(n, 4 + 4 * d);
  });
  return Buffer.concat([header, data]);
}
