/** A folder that does not exist is named as such, not as a broken symlink. */
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { scanFolder } from '../../src/data/scan.js';
import { walkFiles } from '../../src/data/walk.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'selfsup-scan-missing-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

async function firstEntry(root: string) {
  for await (const entry of walkFiles(root)) return entry;
  return undefined;
}

describe('scan of a missing folder', () => {
  it('says the folder does not exist', async () => {
    const missing = path.join(work, 'nonexistent');
    await expect(firstEntry(missing)).rejects.toThrow(`${missing}: does not exist`);
    await expect(scanFolder(missing, { out: path.join(work, 'manifest.arrow') })).rejects.toThrow(
      `${missing}: does not exist`,
    );
  });

  it('says broken symlink only for a broken symlink', async () => {
    const link = path.join(work, 'link');
    symlinkSync(path.join(work, 'gone'), link);
    await expect(firstEntry(link)).rejects.toThrow(`${link}: cannot open folder (a broken symlink)`);
  });
});
