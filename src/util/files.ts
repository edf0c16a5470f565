/**
 * Reading files named by the user or by another file, safely: only regular
 * files are opened (a FIFO, device or socket is refused by name before any
 * open, so nothing blocks), sizes are checked against a limit before reading,
 * and paths read from inside a file must stay inside their allowed folder.
 */
import {
  closeSync,
  constants,
  promises as fsp,
  realpathSync as fsRealpath,
  fstatSync,
  openSync,
  readSync,
  type Stats,
  statSync,
} from 'node:fs';
import path from 'node:path';
import { InputError } from './errors.js';

/** "a FIFO (named pipe)", "a character device", ... for a stat that is not a regular file. */
export function describeFileKind(stats: Stats): string {
  if (stats.isFile()) return 'a regular file';
  if (stats.isDirectory()) return 'a folder';
  if (stats.isFIFO()) return 'a FIFO (named pipe)';
  if (stats.isCharacterDevice()) return 'a character device';
  if (stats.isBlockDevice()) return 'a block device';
  if (stats.isSocket()) return 'a socket';
  return 'not a regular file';
}

/** The reason given when `file` is not a regular file: "not a regular file (a FIFO (named pipe))". */
export function notRegularReason(stats: Stats): string {
  return `not a regular file (${describeFileKind(stats)}); refusing to open it`;
}

function missingReason(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'does not exist';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'ELOOP') return 'too many levels of symbolic links';
  if (code === 'ENOTDIR') return 'a part of the path is not a folder';
  return code ?? (e as Error).message;
}

/** Human size for limits: "1 MiB", "3.1 GiB", "512 bytes". */
export function formatBytes(bytes: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  const text = Number.isInteger(value) ? String(value) : value.toFixed(1);
  return `${text} ${units[unit]}`;
}

/** "1048576 bytes (1 MiB)", or "500 bytes" when a unit adds nothing. */
export function describeLimit(bytes: number): string {
  return bytes < 1024 ? `${bytes} bytes` : `${bytes} bytes (${formatBytes(bytes)})`;
}

/** stat()s `file` (following symlinks) and throws InputError(file) unless it is a regular file. */
export function statRegularFile(file: string, what = 'file'): Stats {
  let stats: Stats;
  try {
    stats = statSync(file);
  } catch (e) {
    throw new InputError(file, `cannot read the ${what}: ${missingReason(e)}`);
  }
  if (!stats.isFile()) throw new InputError(file, `cannot read the ${what}: ${notRegularReason(stats)}`);
  return stats;
}

/** Async {@link statRegularFile}. */
export async function statRegularFileAsync(file: string, what = 'file'): Promise<Stats> {
  let stats: Stats;
  try {
    stats = await fsp.stat(file);
  } catch (e) {
    throw new InputError(file, `cannot read the ${what}: ${missingReason(e)}`);
  }
  if (!stats.isFile()) throw new InputError(file, `cannot read the ${what}: ${notRegularReason(stats)}`);
  return stats;
}

export interface ReadLimit {
  /** Largest file accepted, in bytes. */
  maxBytes: number;
  /** What the file is, for messages ("recipe", "weights file"). */
  what?: string;
}

/**
 * Reads a whole regular file whose size is at most `maxBytes`. A missing file, a
 * special file (never opened) or one over the limit is an InputError naming the
 * file, its kind or size, and the limit. The open is non-blocking and re-checked
 * with fstat, so a file swapped for a FIFO after the stat is still refused.
 */
export function readRegularFile(file: string, limit: ReadLimit): Buffer {
  const what = limit.what ?? 'file';
  const stats = statRegularFile(file, what);
  const tooBig = (size: number) =>
    new InputError(file, `the ${what} is ${size} bytes, over the limit of ${describeLimit(limit.maxBytes)}`);
  if (stats.size > limit.maxBytes) throw tooBig(stats.size);
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    throw new InputError(file, `cannot read the ${what}: ${missingReason(e)}`);
  }
  try {
    const opened = fstatSync(fd);
    if (!opened.isFile()) throw new InputError(file, `cannot read the ${what}: ${notRegularReason(opened)}`);
    if (opened.size > limit.maxBytes) throw tooBig(opened.size);
    const buffer = Buffer.allocUnsafe(opened.size);
    let filled = 0;
    while (filled < buffer.length) {
      const n = readSync(fd, buffer, filled, buffer.length - filled, filled);
      if (n === 0) break; // shrank while reading
      filled += n;
    }
    return filled === buffer.length ? buffer : buffer.subarray(0, filled);
  } finally {
    closeSync(fd);
  }
}

/** {@link readRegularFile} as UTF-8 text. */
export function readRegularTextFile(file: string, limit: ReadLimit): string {
  return readRegularFile(file, limit).toString('utf8');
}

/**
 * Resolves `relative` (a path read from inside `from`) against `root` and checks
 * that it stays inside `root` after following symlinks, and that it is a regular
 * file. Absolute paths and paths escaping `root` are InputErrors naming `from`
 * and the offending path. Returns the resolved path and its stat.
 */
export function resolveInside(
  root: string,
  relative: string,
  from: string,
  what = 'file',
): { file: string; stats: Stats } {
  if (typeof relative !== 'string' || relative.length === 0 || relative.includes('\0')) {
    throw new InputError(from, `lists an invalid ${what} path ${JSON.stringify(relative)}`);
  }
  if (path.isAbsolute(relative)) {
    throw new InputError(from, `lists the ${what} "${relative}", an absolute path; only paths inside ${root} are read`);
  }
  const file = path.resolve(root, relative);
  const escapes = (target: string, base: string) => {
    const rel = path.relative(base, target);
    return rel === '..' || rel.startsWith(`..${path.sep}`) || path.isAbsolute(rel);
  };
  if (escapes(file, path.resolve(root))) {
    throw new InputError(from, `lists the ${what} "${relative}", which is outside ${root}; refusing to read it`);
  }
  let real: string;
  let realRoot: string;
  try {
    real = fsRealpath(file);
    realRoot = fsRealpath(root);
  } catch (e) {
    throw new InputError(from, `lists the ${what} "${relative}", which cannot be read: ${missingReason(e)}`);
  }
  if (escapes(real, realRoot)) {
    throw new InputError(
      from,
      `lists the ${what} "${relative}", a symlink that leads outside ${root}; refusing to read it`,
    );
  }
  const stats = statSync(real);
  if (!stats.isFile()) throw new InputError(from, `lists the ${what} "${relative}", ${notRegularReason(stats)}`);
  return { file, stats };
}
