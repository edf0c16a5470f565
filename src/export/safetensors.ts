/**
 * safetensors reader and writer (our own; the format is small):
 *
 *   [8 bytes: header length N, unsigned little-endian]
 *   [N bytes: UTF-8 JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}},
 *             padded with spaces so the data starts at a multiple of 8]
 *   [data: raw little-endian tensors; offsets are relative to the start of this block]
 *
 * The reader validates everything against the file size before touching data:
 * a truncated file, a hostile header length, offsets outside the data, holes or
 * overlaps, a size that disagrees with dtype x shape are errors that name the
 * file. Dtypes: F32, F16, BF16, I64, I32, U8 (read); F32, F16, BF16, I64 (write).
 */
import { writeFileAtomic } from '../util/atomic.js';
import { InputError } from '../util/errors.js';
import { readRegularFile } from '../util/files.js';

export type SafetensorsDtype = 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'U8';

const ITEM_SIZE: Record<SafetensorsDtype, number> = { F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, U8: 1 };

/** The reference implementation caps headers at 100 MB; anything larger is rejected as hostile. */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

/** Largest .safetensors file read: 4 GiB (a ResNet-50 in F32 is ~100 MB). */
export const MAX_SAFETENSORS_BYTES = 4 * 1024 * 1024 * 1024 - 1;

/** A tensor to write. Floating values are converted to `dtype` (F16/BF16 round to nearest even). */
export type SafetensorsInput =
  | { dtype: 'F32' | 'F16' | 'BF16'; shape: number[]; values: Float32Array }
  | { dtype: 'I64'; shape: number[]; values: BigInt64Array };

/** A tensor as read: raw little-endian bytes (a copy, so aligned) plus dtype and shape. */
export interface SafetensorsEntry {
  dtype: SafetensorsDtype;
  shape: number[];
  bytes: Uint8Array;
}

export interface SafetensorsContents {
  metadata: Record<string, string>;
  /** In file order (by data offset). */
  tensors: Map<string, SafetensorsEntry>;
}

const scratch = new DataView(new ArrayBuffer(4));
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** float32 -> IEEE half bits, round to nearest even; overflow goes to +-Inf, NaN stays NaN. */
export function float32ToFloat16Bits(value: number): number {
  scratch.setFloat32(0, value);
  const bits = scratch.getUint32(0);
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  let mantissa = bits & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0);
  const e = exponent - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign; // below half the smallest subnormal
    mantissa |= 0x800000;
    const shift = 14 - e;
    let half = mantissa >>> shift;
    const remainder = mantissa & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (remainder > halfway || (remainder === halfway && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mantissa >>> 13);
  const remainder = mantissa & 0x1fff;
  if (remainder > 0x1000 || (remainder === 0x1000 && half & 1)) half++; // a carry into the exponent is correct
  return sign | half;
}

/** IEEE half bits -> number. */
export function float16BitsToFloat32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >>> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 0x1f) return mantissa ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

/** float32 -> bfloat16 bits, round to nearest even. */
export function float32ToBfloat16Bits(value: number): number {
  scratch.setFloat32(0, value);
  const bits = scratch.getUint32(0);
  if ((bits & 0x7f800000) === 0x7f800000 && bits & 0x7fffff) return (bits >>> 16) | 0x40; // NaN
  const rounded = bits + 0x7fff + ((bits >>> 16) & 1);
  return (rounded >>> 16) & 0xffff;
}

function encodeValues(tensor: SafetensorsInput): Uint8Array {
  const count = tensor.values.length;
  if (tensor.dtype === 'I64') return new Uint8Array(tensor.values.slice().buffer);
  if (tensor.dtype === 'F32') return new Uint8Array(tensor.values.slice().buffer);
  const out = new Uint16Array(count);
  const convert = tensor.dtype === 'F16' ? float32ToFloat16Bits : float32ToBfloat16Bits;
  for (let i = 0; i < count; i++) out[i] = convert(tensor.values[i]);
  return new Uint8Array(out.buffer);
}

function elementCount(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/**
 * Encodes tensors and string metadata as a safetensors file. Tensors are laid
 * out by item size (largest first, then in the given order) so every tensor is
 * aligned to its item size.
 */
export function encodeSafetensors(tensors: Record<string, SafetensorsInput>, metadata: Record<string, string> = {}) {
  if (!LITTLE_ENDIAN) throw new Error('safetensors writing needs a little-endian host');
  const names = Object.keys(tensors);
  const order = names
    .map((name, index) => ({ name, index, size: ITEM_SIZE[tensors[name].dtype] }))
    .sort((a, b) => b.size - a.size || a.index - b.index);
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  const blobs: Uint8Array[] = [];
  let offset = 0;
  for (const { name } of order) {
    const tensor = tensors[name];
    if (name === '__metadata__') throw new Error('"__metadata__" is reserved and cannot name a tensor');
    if (elementCount(tensor.shape) !== tensor.values.length) {
      throw new Error(
        `tensor "${name}": shape [${tensor.shape.join(', ')}] needs ${elementCount(tensor.shape)} values but has ${tensor.values.length}`,
      );
    }
    const bytes = encodeValues(tensor);
    header[name] = { dtype: tensor.dtype, shape: tensor.shape, data_offsets: [offset, offset + bytes.length] };
    blobs.push(bytes);
    offset += bytes.length;
  }
  let json = JSON.stringify(header);
  const jsonBytes = Buffer.byteLength(json, 'utf8');
  json += ' '.repeat((8 - (jsonBytes % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const out = new Uint8Array(8 + headerBytes.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  let position = 8 + headerBytes.length;
  for (const blob of blobs) {
    out.set(blob, position);
    position += blob.length;
  }
  return out;
}

function isNonNegativeInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/**
 * Parses a safetensors file held in memory. `file` names the source in errors.
 * Every tensor's bytes are copied out (aligned, independent of `bytes`).
 */
export function decodeSafetensors(bytes: Uint8Array, file = '<buffer>'): SafetensorsContents {
  const fail = (message: string) => new InputError(file, `not a valid safetensors file: ${message}`);
  if (bytes.length < 8) throw fail(`${bytes.length} bytes is too short for the 8-byte header length`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = view.getBigUint64(0, true);
  if (headerLength > BigInt(MAX_HEADER_BYTES)) {
    throw fail(`header length ${headerLength} exceeds the ${MAX_HEADER_BYTES}-byte limit (corrupt or hostile file)`);
  }
  const n = Number(headerLength);
  if (8 + n > bytes.length) {
    throw fail(`header length ${n} runs past the end of the file (${bytes.length} bytes): truncated?`);
  }
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + n)));
  } catch (e) {
    throw fail(`header is not UTF-8 JSON (${(e as Error).message})`);
  }
  if (!header || typeof header !== 'object' || Array.isArray(header)) throw fail('header is not a JSON object');
  const dataStart = 8 + n;
  const dataSize = bytes.length - dataStart;
  const metadata: Record<string, string> = {};
  const entries: Array<{ name: string; dtype: SafetensorsDtype; shape: number[]; begin: number; end: number }> = [];
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw fail('"__metadata__" is not an object');
      for (const [key, value] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof value !== 'string') throw fail(`"__metadata__.${key}" is not a string`);
        metadata[key] = value;
      }
      continue;
    }
    const info = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (!info || typeof info !== 'object') throw fail(`entry "${name}" is not an object`);
    if (typeof info.dtype !== 'string' || !(info.dtype in ITEM_SIZE)) {
      throw fail(
        `tensor "${name}" has unsupported dtype ${JSON.stringify(info.dtype)} (supported: ${Object.keys(ITEM_SIZE).join(', ')})`,
      );
    }
    if (!Array.isArray(info.shape) || !info.shape.every(isNonNegativeInteger)) {
      throw fail(`tensor "${name}" has an invalid shape ${JSON.stringify(info.shape)}`);
    }
    const offsets = info.data_offsets;
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every(isNonNegativeInteger) ||
      offsets[0] > offsets[1]
    ) {
      throw fail(`tensor "${name}" has invalid data_offsets ${JSON.stringify(offsets)}`);
    }
    const dtype = info.dtype as SafetensorsDtype;
    const shape = info.shape as number[];
    const [begin, end] = offsets as [number, number];
    if (end > dataSize) {
      throw fail(`tensor "${name}" data_offsets [${begin}, ${end}] go beyond the ${dataSize} data bytes (truncated?)`);
    }
    const expected = elementCount(shape) * ITEM_SIZE[dtype];
    if (end - begin !== expected) {
      throw fail(
        `tensor "${name}" (${dtype} [${shape.join(', ')}]) needs ${expected} bytes but data_offsets span ${end - begin}`,
      );
    }
    entries.push({ name, dtype, shape, begin, end });
  }
  // The data block must be covered exactly: no holes, no overlaps.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  for (const entry of entries) {
    if (entry.begin !== cursor) {
      throw fail(
        `tensor "${entry.name}" starts at ${entry.begin} but the previous tensor ends at ${cursor} (overlap or hole)`,
      );
    }
    cursor = entry.end;
  }
  if (cursor !== dataSize) throw fail(`tensors cover ${cursor} data bytes but the file holds ${dataSize}`);
  const tensors = new Map<string, SafetensorsEntry>();
  for (const { name, dtype, shape, begin, end } of entries) {
    // A copy (not a view: Buffer#slice would share memory) so typed views are aligned.
    const copy = new Uint8Array(end - begin);
    copy.set(bytes.subarray(dataStart + begin, dataStart + end));
    tensors.set(name, { dtype, shape, bytes: copy });
  }
  return { metadata, tensors };
}

/** Values of a floating or integer tensor as float32 (I64 beyond 2^24 loses precision). */
export function entryToFloat32(entry: SafetensorsEntry): Float32Array {
  const { buffer } = entry.bytes;
  switch (entry.dtype) {
    case 'F32':
      return new Float32Array(buffer);
    case 'F16': {
      const bits = new Uint16Array(buffer);
      const out = new Float32Array(bits.length);
      for (let i = 0; i < bits.length; i++) out[i] = float16BitsToFloat32(bits[i]);
      return out;
    }
    case 'BF16': {
      const bits = new Uint16Array(buffer);
      const wide = new Uint32Array(bits.length);
      for (let i = 0; i < bits.length; i++) wide[i] = bits[i] << 16;
      return new Float32Array(wide.buffer);
    }
    case 'I64':
      return Float32Array.from(new BigInt64Array(buffer), (v) => Number(v));
    case 'I32':
      return Float32Array.from(new Int32Array(buffer));
    case 'U8':
      return Float32Array.from(entry.bytes);
  }
}

/** Values of an I64 tensor. */
export function entryToBigInt64(entry: SafetensorsEntry, file = '<buffer>', name = '?'): BigInt64Array {
  if (entry.dtype !== 'I64') throw new InputError(file, `tensor "${name}" is ${entry.dtype}, expected I64`);
  return new BigInt64Array(entry.bytes.buffer);
}

/** Reads and validates a .safetensors file. */
export function readSafetensors(file: string): SafetensorsContents {
  return decodeSafetensors(readRegularFile(file, { maxBytes: MAX_SAFETENSORS_BYTES, what: 'safetensors file' }), file);
}

/** Writes a .safetensors file atomically. */
export async function writeSafetensors(
  file: string,
  tensors: Record<string, SafetensorsInput>,
  metadata: Record<string, string> = {},
): Promise<void> {
  await writeFileAtomic(file, encodeSafetensors(tensors, metadata));
}
