/**
 * Atomic file writes: write to a temporary name in the same folder, fsync, then
 * rename. A failure (no space left, read-only file system, ...) is a WriteError
 * naming the file that was being written, and leaves no temporary file behind.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, promises as fsp, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { WriteError } from './errors.js';

const REASONS: Record<string, string> = {
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  EROFS: 'the file system is read-only',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EISDIR: 'it is a folder',
  ENOTDIR: 'a part of its path is a file, not a folder',
  EEXIST: 'a part of its path is a file, not a folder',
  EFBIG: 'the file is too large for the file system',
  EIO: 'input/output error from the device',
};

/** Wraps a file-system error raised while writing `target` into a WriteError naming it. */
export function writeError(target: string, e: unknown): Error {
  if (e instanceof WriteError) return e.file === target ? e : new WriteError(target, e.code, e.reason);
  const code = (e as NodeJS.ErrnoException).code;
  if (!code) return e as Error;
  return new WriteError(target, code, `${REASONS[code] ?? (e as Error).message.split('\n')[0]} (${code})`);
}

function tempName(target: string): string {
  return path.join(
    path.dirname(target),
    `.${path.basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`,
  );
}

/** Writes `data` to `target` so that readers see either the old file or the whole new one. */
export async function writeFileAtomic(target: string, data: string | Uint8Array): Promise<void> {
  const tmp = tempName(target);
  try {
    await fsp.mkdir(path.dirname(target), { recursive: true });
    const handle = await fsp.open(tmp, 'w');
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fsp.rename(tmp, target);
  } catch (e) {
    await fsp.rm(tmp, { force: true }).catch(() => undefined);
    throw writeError(target, e);
  }
}

export function writeFileAtomicSync(target: string, data: string | Uint8Array): void {
  const tmp = tempName(target);
  try {
    mkdirSync(path.dirname(target), { recursive: true });
    writeFileSync(tmp, data);
    const fd = openSync(tmp, 'r');
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, target);
  } catch (e) {
    try {
      rmSync(tmp, { force: true });
    } catch {
      // the original error matters more
    }
    throw writeError(target, e);
  }
}

/**
 * Writes a whole directory atomically: `fill` writes into a temporary sibling
 * folder, which is then renamed over `target` (an existing target is replaced).
 */
export async function writeDirAtomic(target: string, fill: (dir: string) => Promise<void>): Promise<void> {
  const tmp = tempName(target);
  try {
    await fsp.mkdir(path.dirname(target), { recursive: true });
    await fsp.mkdir(tmp);
  } catch (e) {
    throw writeError(target, e);
  }
  try {
    await fill(tmp);
    const old = `${tmp}.old`;
    let hadOld = false;
    try {
      await fsp.rename(target, old);
      hadOld = true;
    } catch {
      // no previous target
    }
    await fsp.rename(tmp, target);
    if (hadOld) await fsp.rm(old, { recursive: true, force: true });
  } catch (e) {
    await fsp.rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    throw writeError(target, e);
  }
}
