/** Write failures (no space, read-only file system, a file where a folder should be) name the file being written. */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeArrowTable } from '../../src/util/arrow.js';
import { writeDirAtomic, writeFileAtomic, writeFileAtomicSync } from '../../src/util/atomic.js';
import { WriteError } from '../../src/util/errors.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'selfsup-write-errors-'));

/** Mounts a tmpfs of `size` at `dir` (needs root); false when this machine does not allow it. */
function mountTmpfs(dir: string, options: string): boolean {
  mkdirSync(dir, { recursive: true });
  if (process.getuid?.() !== 0) return false;
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const full = path.join(work, 'full');
const readOnly = path.join(work, 'read-only');
// Mounted when the file is loaded, so the test below can be skipped (with its reason) where mounting is not allowed.
const mounted = mountTmpfs(full, 'size=64k') && mountTmpfs(readOnly, 'ro,size=64k');
afterAll(() => {
  for (const dir of [full, readOnly]) {
    try {
      execFileSync('umount', [dir], { stdio: 'ignore' });
    } catch {
      // not mounted
    }
  }
  rmSync(work, { recursive: true, force: true });
});

describe('write errors name the file', () => {
  it('a file where a folder should be', async () => {
    writeFileSync(path.join(work, 'not-a-folder'), 'x');
    const target = path.join(work, 'not-a-folder', 'out.json');
    await expect(writeFileAtomic(target, '{}')).rejects.toThrow(
      `cannot write ${target}: a part of its path is a file, not a folder (`,
    );
    expect(() => writeFileAtomicSync(target, '{}')).toThrow(WriteError);
  });

  // Needs a small tmpfs: root and permission to mount.
  it.skipIf(!mounted)('no space left (ENOSPC) and a read-only file system (EROFS)', async () => {
    const big = new Uint8Array(256 * 1024);
    const target = path.join(full, 'weights.bin');
    const error = await writeFileAtomic(target, big).catch((e: Error) => e);
    expect(error).toBeInstanceOf(WriteError);
    expect((error as Error).message).toBe(`cannot write ${target}: no space left on the device (ENOSPC)`);
    expect(readdirSync(full)).toEqual([]); // the temporary file is gone
    const table = path.join(full, 'metrics.arrow');
    await expect(writeArrowTable(table, { x: new Float64Array(64 * 1024) })).rejects.toThrow(
      `cannot write ${table}: no space left on the device (ENOSPC)`,
    );
    const dir = path.join(full, 'export');
    await expect(writeDirAtomic(dir, async (tmp) => writeFileAtomic(path.join(tmp, 'a.bin'), big))).rejects.toThrow(
      `cannot write ${dir}: no space left on the device (ENOSPC)`,
    );
    expect(readdirSync(full)).toEqual([]);
    const ro = path.join(readOnly, 'manifest.json');
    await expect(writeFileAtomic(ro, '{}')).rejects.toThrow(`cannot write ${ro}: the file system is read-only (EROFS)`);
    expect(() => writeFileAtomicSync(ro, '{}')).toThrow(`cannot write ${ro}: the file system is read-only (EROFS)`);
  });
});
