/**
 * Decoding any image sharp reads into an 8-bit sRGB (or 1-channel) HWC buffer.
 * EXIF orientation is applied; CMYK, grayscale, palette and 16-bit inputs are
 * converted; alpha is flattened on a fixed background; GIF/TIFF give their first frame.
 */
import type { Stats } from 'node:fs';
import { stat } from 'node:fs/promises';
import sharp, { type Sharp } from 'sharp';
import { InputError } from '../util/errors.js';
import { notRegularReason } from '../util/files.js';
import type { RawImage } from './types.js';

/** Refuse images with more pixels than this (decompression bombs). 100 megapixels. */
export const DEFAULT_MAX_PIXELS = 100_000_000;

export interface DecodeOptions {
  /** Largest width x height accepted (default 100,000,000); larger inputs fail with "exceeds pixel limit". */
  maxPixels?: number;
  /** Background that transparent pixels are flattened on, 0-255 per channel (default mid-gray [128, 128, 128]). */
  background?: [number, number, number];
  /**
   * Shrink on decode so the shorter side is at most this many px (keeps aspect ratio, never enlarges).
   * JPEG and WebP then decode at reduced resolution, which is much faster for large photos.
   */
  maxShorterSide?: number;
}

/**
 * True when the bytes start like a JPEG, PNG or GIF but lack that format's end
 * marker (JPEG EOI, PNG IEND chunk, GIF trailer) near the end: a cut-off file.
 */
export function missingEndMarker(bytes: Buffer): boolean {
  const tail = bytes.subarray(Math.max(0, bytes.length - 64));
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) {
    for (let i = tail.length - 2; i >= 0; i--) if (tail[i] === 0xff && tail[i + 1] === 0xd9) return false;
    return true;
  }
  if (bytes.length >= 8 && bytes.readUInt32BE(0) === 0x89504e47) return !tail.includes('IEND');
  if (bytes.length >= 6 && bytes.subarray(0, 4).toString('latin1') === 'GIF8') return !tail.includes(0x3b);
  return false;
}

/**
 * Turns a sharp/libvips/file-system error into a short reason for manifests and
 * error messages. libvips can lose its message when decodes fail concurrently
 * ("Unknown error"); given the file's bytes, a cut-off file is still named as such.
 */
export function describeDecodeError(error: unknown, bytes?: Buffer): string {
  const reason = classifyDecodeError(error);
  if (bytes && reason.startsWith('corrupt') && missingEndMarker(bytes)) {
    return `truncated: the file ends before the image's end marker (${reason.slice('corrupt: '.length)})`;
  }
  return reason;
}

function classifyDecodeError(error: unknown): string {
  const err = error as NodeJS.ErrnoException;
  const message = String(err?.message ?? error);
  if (err?.code === 'EACCES' || err?.code === 'EPERM') return 'unreadable: permission denied';
  if (err?.code === 'ENOENT') return 'unreadable: file not found (deleted, or a broken symlink)';
  if (err?.code === 'EISDIR') return 'unreadable: is a directory';
  if (err?.code) return `unreadable: ${err.code}`;
  if (/buffer is empty|empty/i.test(message)) return 'empty file (0 bytes)';
  if (/unsupported image format/i.test(message)) return 'not an image (unsupported format)';
  if (/exceeds pixel limit/i.test(message)) return 'too many pixels (possible decompression bomb)';
  if (/premature end|truncated|unexpected end|not enough data|short read|read error|EOF/i.test(message)) {
    return `truncated: ${message.split('\n')[0]}`;
  }
  return `corrupt: ${message.split('\n')[0]}`;
}

function sharpFor(input: string | Buffer, options: DecodeOptions): Sharp {
  return sharp(input, {
    limitInputPixels: options.maxPixels ?? DEFAULT_MAX_PIXELS,
    failOn: 'truncated',
    sequentialRead: true,
  });
}

/**
 * Decodes `input` (a path or the file's bytes) to `channels` channels.
 * Throws InputError(name, reason) for anything that is not a readable image.
 */
export async function decodeImage(
  input: string | Buffer,
  channels: 1 | 3,
  options: DecodeOptions = {},
  name = typeof input === 'string' ? input : 'image buffer',
): Promise<RawImage> {
  if (Buffer.isBuffer(input) && input.length === 0) throw new InputError(name, 'empty file (0 bytes)');
  if (typeof input === 'string') {
    // Never hand a FIFO, device or socket to the decoder: opening a FIFO blocks forever.
    let stats: Stats;
    try {
      stats = await stat(input);
    } catch (e) {
      throw new InputError(name, describeDecodeError(e));
    }
    if (!stats.isFile()) {
      if (stats.isDirectory()) throw new InputError(name, 'unreadable: is a directory');
      throw new InputError(name, `unreadable: ${notRegularReason(stats)}`);
    }
    if (stats.size === 0) throw new InputError(name, 'empty file (0 bytes)');
  }
  const [r, g, b] = options.background ?? [128, 128, 128];
  try {
    let pipeline = sharpFor(input, options).rotate().flatten({ background: { r, g, b } });
    if (options.maxShorterSide) {
      const side = options.maxShorterSide;
      pipeline = pipeline.resize({ width: side, height: side, fit: 'outside', withoutEnlargement: true });
    }
    pipeline = channels === 1 ? pipeline.greyscale().toColourspace('b-w') : pipeline.toColourspace('srgb');
    const { data, info } = await pipeline.raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    const pixels = new Uint8Array(data.buffer, data.byteOffset, data.length);
    return toChannels({ data: pixels, width: info.width, height: info.height }, info.channels, channels);
  } catch (e) {
    if (e instanceof InputError) throw e;
    if (typeof input === 'string') {
      const size = await stat(input).then(
        (st) => st.size,
        () => -1,
      );
      if (size === 0) throw new InputError(name, 'empty file (0 bytes)');
    }
    throw new InputError(name, describeDecodeError(e, Buffer.isBuffer(input) ? input : undefined));
  }
}

/** Converts a decoded buffer with `have` channels to `want` (1 or 3); drops any alpha left over. */
function toChannels(image: { data: Uint8Array; width: number; height: number }, have: number, want: 1 | 3): RawImage {
  const { width, height, data } = image;
  if (have === want) return { data, width, height, channels: want };
  const pixels = width * height;
  const out = new Uint8Array(pixels * want);
  for (let p = 0; p < pixels; p++) {
    const s = p * have;
    if (want === 1) {
      out[p] = have >= 3 ? Math.round(0.299 * data[s] + 0.587 * data[s + 1] + 0.114 * data[s + 2]) : data[s];
    } else {
      const d = p * 3;
      if (have >= 3) {
        out[d] = data[s];
        out[d + 1] = data[s + 1];
        out[d + 2] = data[s + 2];
      } else {
        out[d] = out[d + 1] = out[d + 2] = data[s];
      }
    }
  }
  return { data: out, width, height, channels: want };
}

export interface ImageHeader {
  /** Width and height after EXIF orientation. */
  width: number;
  height: number;
  /** Channels stored in the file (4 for CMYK or RGBA). */
  channels: number;
  /** jpeg, png, webp, gif, tiff, avif, heif, svg, ... */
  format: string;
}

/**
 * Checks that `bytes` decode completely (a small shrink-on-load decode, so
 * truncation and corruption are caught) and returns the header facts.
 */
export async function probeImage(bytes: Buffer, options: DecodeOptions = {}): Promise<ImageHeader> {
  if (bytes.length === 0) throw new Error('Input Buffer is empty');
  const meta = await sharpFor(bytes, options).metadata();
  // Full decode at reduced size: catches truncated and corrupt data that the header hides.
  await sharpFor(bytes, options).resize(16, 16, { fit: 'inside' }).raw().toBuffer();
  const rotated = (meta.orientation ?? 1) >= 5;
  const width = meta.width ?? 0;
  const height = meta.height ?? 0;
  let format = String(meta.format ?? 'unknown');
  if (format === 'heif' && meta.compression === 'av1') format = 'avif';
  return {
    width: rotated ? height : width,
    height: rotated ? width : height,
    channels: meta.channels ?? 0,
    format,
  };
}
