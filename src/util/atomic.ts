/** Atomic file writes: write to a temporary name in the same folder, fsync, then rename. */
import { randomBytes } from 'node:crypto';
import { closeSync, promises as fsp, fsyncSync, mkdirSync, openSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

function tempName(target: string): string {
  return path.join(
    path.dirname(target),
    `.${path.basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`,
  );
}

/** Writes `data` to `target` so that readers see either the old file or the whole new one. */
export async function writeFileAtomic(target: string, data: string | Uint8Array): Promise<void> {
  await fsp.mkdir(path.dirname(target), { recursive: true });
  const tmp = tempName(target);
  const handle = await fsp.open(tmp, 'w');
  try {
    await handle.writeFile(data);
    await handle.sync();
  } catch (e) {
    await handle.close();
    await fsp.rm(tmp, { force: true });
    throw e;
  }
  await handle.close();
  await fsp.rename(tmp, target);
}

export function writeFileAtomicSync(target: string, data: string | Uint8Array): void {
  mkdirSync(path.dirname(target), { recursive: true });
  const tmp = tempName(target);
  try {
    writeFileSync(tmp, data);
    const fd = openSync(tmp, 'r');
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, target);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

/**
 * Writes a whole directory atomically: `fill` writes into a temporary sibling
 * folder, which is then renamed over `target` (an existing target is replaced).
 */
export async function writeDirAtomic(target: string, fill: (dir: string) => Promise<void>): Promise<void> {
  await fsp.mkdir(path.dirname(target), { recursive: true });
  const tmp = tempName(target);
  await fsp.mkdir(tmp);
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
    await fsp.rm(tmp, { recursive: true, force: true });
    throw e;
  }
}
