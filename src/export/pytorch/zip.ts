/**
 * The zip container of `torch.save` (PyTorch >= 1.6): a central directory read
 * from the end of the file, entries read on demand. torch writes every record
 * uncompressed ("stored", aligned to 64 bytes); deflated entries (a checkpoint
 * re-zipped by another tool) are inflated with node:zlib, capped at the size the
 * directory declares. Zip64 records are understood. Every offset and size is
 * checked against the file size before it is used.
 */
import { inflateRawSync } from 'node:zlib';
import { InputError } from '../../util/errors.js';
import type { FileSource } from './file-source.js';

export interface ZipEntry {
  name: string;
  /** 0 stored, 8 deflate. */
  method: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
}

const EOCD = 0x06054b50;
const EOCD64_LOCATOR = 0x07064b50;
const EOCD64 = 0x06064b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;
const MAX_COMMENT = 0xffff;

/** True when the file starts with a zip local header (`PK\x03\x04`). */
export function looksLikeZip(source: FileSource): boolean {
  return source.size >= 4 && source.read(0, 4, 'the magic number').readUInt32LE(0) === LOCAL;
}

function findEndOfCentralDirectory(source: FileSource): { at: number; record: Buffer } {
  const tail = Math.min(source.size, 22 + MAX_COMMENT);
  const start = source.size - tail;
  const bytes = source.read(start, tail, 'the zip end record');
  for (let i = tail - 22; i >= 0; i--) {
    if (bytes.readUInt32LE(i) === EOCD) return { at: start + i, record: bytes.subarray(i, i + 22) };
  }
  throw new InputError(source.file, 'not a valid zip archive: no end-of-central-directory record (truncated?)');
}

/** Reads the central directory. Entry names must be unique. */
export function readZipDirectory(source: FileSource): Map<string, ZipEntry> {
  const fail = (message: string) => new InputError(source.file, `not a valid zip archive: ${message}`);
  const { at, record } = findEndOfCentralDirectory(source);
  let count = record.readUInt16LE(10);
  let directorySize = record.readUInt32LE(12);
  let directoryOffset = record.readUInt32LE(16);
  if (count === 0xffff || directorySize === 0xffffffff || directoryOffset === 0xffffffff) {
    if (at < 20) throw fail('zip64 end record locator missing');
    const locator = source.read(at - 20, 20, 'the zip64 locator');
    if (locator.readUInt32LE(0) !== EOCD64_LOCATOR) throw fail('zip64 end record locator missing');
    const recordOffset = Number(locator.readBigUInt64LE(8));
    const record64 = source.read(recordOffset, 56, 'the zip64 end record');
    if (record64.readUInt32LE(0) !== EOCD64) throw fail('zip64 end record has a bad signature');
    count = Number(record64.readBigUInt64LE(32));
    directorySize = Number(record64.readBigUInt64LE(40));
    directoryOffset = Number(record64.readBigUInt64LE(48));
  }
  if (count > directorySize / 46 + 1) throw fail(`${count} entries cannot fit in a ${directorySize}-byte directory`);
  const directory = source.read(directoryOffset, directorySize, 'the zip central directory');
  const entries = new Map<string, ZipEntry>();
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > directory.length || directory.readUInt32LE(p) !== CENTRAL) {
      throw fail(`central directory entry ${i} is cut off or has a bad signature`);
    }
    const flags = directory.readUInt16LE(p + 8);
    const method = directory.readUInt16LE(p + 10);
    let compressedSize = directory.readUInt32LE(p + 20);
    let size = directory.readUInt32LE(p + 24);
    const nameLength = directory.readUInt16LE(p + 28);
    const extraLength = directory.readUInt16LE(p + 30);
    const commentLength = directory.readUInt16LE(p + 32);
    let localHeaderOffset = directory.readUInt32LE(p + 42);
    const end = p + 46 + nameLength + extraLength + commentLength;
    if (end > directory.length) throw fail(`central directory entry ${i} runs past the directory`);
    const name = directory.subarray(p + 46, p + 46 + nameLength).toString('utf8');
    // zip64 extended information: 64-bit fields in order, present only for fields saturated above.
    let e = p + 46 + nameLength;
    const extraEnd = e + extraLength;
    while (e + 4 <= extraEnd) {
      const id = directory.readUInt16LE(e);
      const length = directory.readUInt16LE(e + 2);
      if (id === 0x0001) {
        let q = e + 4;
        const next = () => {
          if (q + 8 > e + 4 + length) throw fail(`zip64 field of "${name}" is too short`);
          const value = Number(directory.readBigUInt64LE(q));
          q += 8;
          return value;
        };
        if (size === 0xffffffff) size = next();
        if (compressedSize === 0xffffffff) compressedSize = next();
        if (localHeaderOffset === 0xffffffff) localHeaderOffset = next();
      }
      e += 4 + length;
    }
    if (flags & 1) throw fail(`entry "${name}" is encrypted`);
    if (method !== 0 && method !== 8)
      throw fail(`entry "${name}" uses compression method ${method} (only stored and deflate)`);
    if (method === 0 && compressedSize !== size) throw fail(`stored entry "${name}" has two different sizes`);
    // deflate cannot expand more than ~1032:1; a larger claim is a zip bomb or corruption.
    if (method === 8 && size > compressedSize * 1032 + 1024)
      throw fail(`entry "${name}" claims an impossible ${size}-byte size`);
    if (localHeaderOffset + 30 + compressedSize > source.size) {
      throw fail(`entry "${name}" (${compressedSize} bytes at ${localHeaderOffset}) runs past the end of the file`);
    }
    if (entries.has(name)) throw fail(`entry "${name}" appears twice`);
    entries.set(name, { name, method, compressedSize, size, localHeaderOffset });
    p = end;
  }
  return entries;
}

/** Absolute offset of an entry's data (after its local header, whose extra field may differ from the directory's). */
export function zipDataOffset(source: FileSource, entry: ZipEntry): number {
  const header = source.read(entry.localHeaderOffset, 30, `the local header of "${entry.name}"`);
  if (header.readUInt32LE(0) !== LOCAL) {
    throw new InputError(source.file, `not a valid zip archive: local header of "${entry.name}" has a bad signature`);
  }
  const start = entry.localHeaderOffset + 30 + header.readUInt16LE(26) + header.readUInt16LE(28);
  if (start + entry.compressedSize > source.size) {
    throw new InputError(source.file, `zip entry "${entry.name}" runs past the end of the file`);
  }
  return start;
}

/** The whole (inflated) content of an entry. */
export function readZipEntry(source: FileSource, entry: ZipEntry): Buffer {
  const raw = source.read(zipDataOffset(source, entry), entry.compressedSize, `zip entry "${entry.name}"`);
  if (entry.method === 0) return raw;
  let out: Buffer;
  try {
    out = inflateRawSync(raw, { maxOutputLength: Math.max(1, entry.size) });
  } catch (e) {
    throw new InputError(source.file, `zip entry "${entry.name}" does not inflate (${(e as Error).message})`);
  }
  if (out.length !== entry.size) {
    throw new InputError(source.file, `zip entry "${entry.name}" inflates to ${out.length} bytes, not ${entry.size}`);
  }
  return out;
}
