#!/usr/bin/env node
/**
 * Scanning 100,000 small files: resident memory (target < 500 MB) and files/s,
 * for a first scan and for a rescan (no file changed). The folder (100 subfolders
 * of tiny PNGs, 1% broken files) is generated once under the temp folder; the
 * scans run in a child process so its peak RSS is the scan's own.
 *
 *   npm run build && node bench/data-scan-memory.mjs [--files 100000]
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : fallback;
};
const fileCount = Number(option('files', '100000'));

if (args[0] === '--child') {
  // Child: scan and report peak resident memory.
  const { scanFolder } = await import(path.join(root, 'dist/src/data/index.js'));
  const [, dir, out, mode] = args;
  let peak = process.memoryUsage().rss;
  const summary = await scanFolder(dir, {
    out,
    previous: mode === 'full' ? null : undefined,
    onProgress: (p) => {
      if (p.files % 500 === 0) peak = Math.max(peak, process.memoryUsage().rss);
    },
  });
  const maxRss = process.resourceUsage().maxRSS * 1024;
  console.log(JSON.stringify({ summary: { ...summary, badExamples: undefined }, sampledPeakRss: peak, maxRss }));
  process.exit(0);
}

const dir = path.join(os.tmpdir(), `selfsup-bench-many-${fileCount}`);
const marker = path.join(dir, '.complete');
if (!existsSync(marker)) {
  const sharp = (await import('sharp')).default;
  const distinct = [];
  for (let i = 0; i < 256; i++) {
    distinct.push(
      await sharp(Buffer.alloc(8 * 8 * 3, i), { raw: { width: 8, height: 8, channels: 3 } })
        .png()
        .toBuffer(),
    );
  }
  const started = Date.now();
  for (let i = 0; i < fileCount; i++) {
    const sub = path.join(dir, `part-${String(i % 100).padStart(3, '0')}`);
    if (i < 100) mkdirSync(sub, { recursive: true });
    const name = path.join(sub, `${String(i).padStart(6, '0')}.png`);
    writeFileSync(name, i % 100 === 99 ? Buffer.from('broken') : distinct[i % 256]);
  }
  writeFileSync(marker, '');
  console.log(`generated ${fileCount} files in ${((Date.now() - started) / 1000).toFixed(1)} s under ${dir}`);
}
const out = path.join(os.tmpdir(), `selfsup-bench-many-${fileCount}.arrow`);
const load = () =>
  os
    .loadavg()
    .map((v) => v.toFixed(1))
    .join(' ');
for (const mode of ['full', 'rescan']) {
  const loadBefore = load();
  const child = spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--child', dir, out, mode], {
    encoding: 'utf8',
    maxBuffer: 1 << 24,
  });
  if (child.status !== 0) {
    console.error(child.stderr);
    process.exit(1);
  }
  const r = JSON.parse(child.stdout.trim().split('\n').pop());
  const s = r.summary;
  console.log(
    `${mode === 'full' ? 'first scan' : 'rescan'} of ${s.files} files (${s.bad} bad, ${s.opened} opened, ${s.reused} reused): ` +
      `${s.seconds.toFixed(1)} s, ${(s.files / s.seconds).toFixed(0)} files/s, peak RSS ${(r.maxRss / 2 ** 20).toFixed(0)} MB ` +
      `(target < 500 MB)  [load ${loadBefore} -> ${load()}]`,
  );
}
