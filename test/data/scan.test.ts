import { chmodSync, mkdirSync, readdirSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { manifestDataset } from '../../src/data/datasets/folder.js';
import { readScanManifest } from '../../src/data/manifest.js';
import { formatScanSummary, scanFolder } from '../../src/data/scan.js';
import { cardSharp, makeBrokenFiles, makeFormatFiles, tempDir, write } from './fixtures.js';

describe('scanFolder', () => {
  let dir: string;
  let out: string;
  beforeAll(async () => {
    dir = tempDir();
    out = path.join(tempDir(), 'manifest.arrow');
    await makeFormatFiles(path.join(dir, 'formats'));
    await makeBrokenFiles(dir);
    write(path.join(dir, 'nested', 'deep', 'x.png'), await cardSharp(10, 12).png().toBuffer());
    // A symlink loop and a broken symlink.
    symlinkSync('..', path.join(dir, 'nested', 'deep', 'loop'));
    symlinkSync(path.join(dir, 'missing.jpg'), path.join(dir, 'dangling.jpg'));
    write(path.join(dir, '.hidden.png'), await cardSharp(4, 4).png().toBuffer());
  });

  it('records every file with its header facts, and every bad one with its reason', async () => {
    const progress: number[] = [];
    const summary = await scanFolder(dir, { out, maxPixels: 4_000_000, onProgress: (p) => progress.push(p.files) });
    const m = readScanManifest(out);
    expect(m.root).toBe(dir);
    const row = (p: string) => m.path.indexOf(p);
    const reasons = Object.fromEntries(m.path.map((p, i) => [p, m.error[i]]));
    expect(reasons['bad/empty.jpg']).toMatch(/^empty file/);
    expect(reasons['bad/truncated.jpg']).toMatch(/^truncated/);
    expect(reasons['bad/corrupt.png']).toMatch(/^(corrupt|truncated)/);
    expect(reasons['bad/notes.txt']).toMatch(/^not an image/);
    expect(reasons['bad/bomb.png']).toMatch(/^too many pixels/);
    expect(reasons['dangling.jpg']).toMatch(/^unreadable/);
    for (const [format, file] of [
      ['jpeg', 'formats/a.jpg'],
      ['png', 'formats/b.png'],
      ['webp', 'formats/c.webp'],
      ['gif', 'formats/d.gif'],
      ['tiff', 'formats/e.tiff'],
      ['avif', 'formats/f.avif'],
      ['jpeg', 'formats/g-cmyk.jpg'],
    ]) {
      const i = row(file);
      expect(m.status[i], file).toBe('ok');
      expect(m.format[i], file).toBe(format);
      expect([m.width[i], m.height[i]], file).toEqual([40, 30]);
      expect(m.hash[i], file).toMatch(/^[0-9a-f]{40}$/);
    }
    expect(m.channels[row('formats/g-cmyk.jpg')]).toBe(4);
    // The loop was entered once; the nested file is listed once; hidden files are skipped.
    expect(m.path.filter((p) => p.endsWith('x.png'))).toEqual(['nested/deep/x.png']);
    expect(m.path.some((p) => p.includes('hidden'))).toBe(false);
    expect(summary.skippedByReason.hidden).toBe(1);
    expect(Object.keys(summary.skippedByReason).some((r) => r.includes('symlink loop'))).toBe(true);
    expect(summary.bad).toBe(6);
    expect(summary.ok).toBe(m.length - 6);
    expect(progress.at(-1)).toBe(m.length);
    expect(formatScanSummary(summary)).toMatch(/6 bad/);
    // The folder dataset reads only the ok rows.
    expect(manifestDataset(out).size).toBe(summary.ok);
  });

  it('rescans incrementally: only new or changed files are opened', async () => {
    const first = await scanFolder(dir, { out, maxPixels: 4_000_000 });
    expect(first.opened).toBe(0);
    write(path.join(dir, 'new.png'), await cardSharp(9, 9).png().toBuffer());
    const changed = path.join(dir, 'formats', 'b.png');
    writeFileSync(changed, await cardSharp(41, 30).png().toBuffer());
    const later = new Date(Date.now() + 5000);
    utimesSync(changed, later, later);
    rmSync(path.join(dir, 'nested', 'deep', 'x.png'));
    const second = await scanFolder(dir, { out, maxPixels: 4_000_000 });
    expect(second.opened).toBe(2); // new.png and b.png
    expect(second.removed).toBe(1);
    expect(second.reused).toBe(second.files - 3); // all but those two and the dangling symlink (never stat'able)
    const m = readScanManifest(out);
    expect(m.width[m.path.indexOf('formats/b.png')]).toBe(41);
    expect(m.status[m.path.indexOf('new.png')]).toBe('ok');
    // previous: null forces a full rescan.
    const full = await scanFolder(dir, { out, previous: null, maxPixels: 4_000_000 });
    expect(full.opened).toBe(full.files - 1); // all but the dangling symlink, which cannot be opened
    expect(full.reused).toBe(0);
  });

  it('writes the manifest atomically: no temporary file is left, an old manifest survives a failed write', async () => {
    const outDir = tempDir();
    const target = path.join(outDir, 'm.arrow');
    await scanFolder(path.join(dir, 'formats'), { out: target });
    expect(readdirSync(outDir)).toEqual(['m.arrow']);
    const before = readScanManifest(target).length;
    // Make the folder read-only for the writer: as root that does not stop writes,
    // so instead point the output at a path whose parent is a file.
    const blocked = path.join(target, 'sub.arrow');
    await expect(scanFolder(path.join(dir, 'formats'), { out: blocked, previous: null })).rejects.toThrow();
    expect(readScanManifest(target).length).toBe(before);
    expect(readdirSync(outDir)).toEqual(['m.arrow']);
  });

  it('records unreadable (permission denied) files', async () => {
    const locked = tempDir();
    chmodSync(locked, 0o777);
    const secret = write(path.join(locked, 'secret.png'), await cardSharp(5, 5).png().toBuffer());
    write(path.join(locked, 'open.png'), await cardSharp(5, 5).png().toBuffer());
    chmodSync(secret, 0o000);
    mkdirSync(path.join(locked, 'closed'));
    chmodSync(path.join(locked, 'closed'), 0o000);
    const target = path.join(locked, 'm.arrow');
    // Root can read mode-000 files, so as root the scan runs with the effective uid of
    // "nobody" (65534) and switches back afterwards; the real uid stays root.
    const asRoot = process.getuid?.() === 0;
    if (asRoot) process.seteuid!(65534);
    try {
      await scanFolder(locked, { out: target });
    } finally {
      if (asRoot) process.seteuid!(0);
    }
    const m = readScanManifest(target);
    const reasons = Object.fromEntries(m.path.map((p, i) => [p, m.error[i]]));
    expect(reasons['secret.png']).toBe('unreadable: permission denied');
    expect(reasons.closed).toBe('unreadable: permission denied');
    expect(reasons['open.png']).toBe('');
  });
});
