/**
 * `scanFolder`: walk a folder, open every new or changed file, and write the
 * manifest (see manifest.ts). Bad files are recorded with their reason, never
 * fatal. Memory stays bounded: the walk streams, at most `concurrency` files are
 * in flight, and rows go into typed columns.
 */
import { createHash } from 'node:crypto';
import { existsSync, promises as fsp } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { assertInteger } from '../util/errors.js';
import { checkOutputFile } from '../util/output-dir.js';
import { Progress } from '../util/progress.js';
import { type DecodeOptions, describeDecodeError, probeImage } from './decode.js';
import { type Manifest, ManifestBuilder, type ManifestRow, manifestRow, readScanManifest } from './manifest.js';
import { walkFiles } from './walk.js';

export interface ScanProgress {
  /** Files handled so far (opened or reused). */
  files: number;
  /** Of those, how many have status "error". */
  bad: number;
  /** Of those, how many were taken from the previous manifest unopened. */
  reused: number;
}

export interface ScanOptions {
  /** Manifest file to write (Arrow IPC), atomically. */
  out: string;
  /**
   * Previous manifest (path or already read) whose rows are reused for files with
   * the same path, size and mtime. Default: `out` itself when it exists and has the same root.
   */
  previous?: string | Manifest | null;
  /** Called after every file; `files` counts up from 0. */
  onProgress?: (progress: ScanProgress) => void;
  /** Show a progress bar on stderr (default false for library calls). */
  progress?: boolean;
  /** Files opened at once (default 8). */
  concurrency?: number;
  /** Include dot-files and dot-folders (default false). */
  includeHidden?: boolean;
  /** Pixel limit against decompression bombs (default 100,000,000). */
  maxPixels?: number;
}

export interface ScanSummary {
  root: string;
  out: string;
  /** Rows in the manifest. */
  files: number;
  ok: number;
  bad: number;
  /** Files opened and decoded in this scan (new or changed). */
  opened: number;
  /** Rows copied from the previous manifest without opening the file. */
  reused: number;
  /** Rows of the previous manifest whose file is gone. */
  removed: number;
  /** Bad files by reason category ("truncated", "not an image", ...). */
  badByReason: Record<string, number>;
  /** Entries not in the manifest (hidden, symlink loops, special files), by reason. */
  skippedByReason: Record<string, number>;
  /** Up to 20 bad files with their full reason, for the report. */
  badExamples: Array<{ path: string; reason: string }>;
  seconds: number;
}

function category(reason: string): string {
  const colon = reason.indexOf(':');
  const head = colon >= 0 ? reason.slice(0, colon) : reason;
  return head.replace(/ \(.*\)$/, '');
}

function loadPrevious(options: ScanOptions, root: string): Manifest | null {
  if (options.previous === null) return null;
  if (options.previous && typeof options.previous === 'object') return options.previous;
  const file = options.previous ?? options.out;
  if (!existsSync(file)) {
    if (options.previous) throw new Error(`${file}: previous manifest not found`);
    return null;
  }
  const manifest = readScanManifest(file);
  return path.resolve(manifest.root) === root ? manifest : null;
}

/** True when `file` is a manifest written by `scanFolder`. */
function isScanManifest(file: string): boolean {
  try {
    readScanManifest(file);
    return true;
  } catch {
    return false;
  }
}

/** Opens one file: size/mtime come from the walk; hash and header from the bytes. */
async function inspectFile(
  full: string,
  relative: string,
  bytes: number,
  mtime: number,
  decode: DecodeOptions,
): Promise<ManifestRow> {
  const row: ManifestRow = { ...emptyRow(relative), bytes, mtime };
  let data: Buffer;
  try {
    data = await fsp.readFile(full);
  } catch (e) {
    row.error = describeDecodeError(e);
    return row;
  }
  row.hash = createHash('sha1').update(data).digest('hex');
  if (data.length === 0) {
    row.error = 'empty file (0 bytes)';
    return row;
  }
  try {
    const header = await probeImage(data, decode);
    Object.assign(row, header, { status: 'ok' });
  } catch (e) {
    row.error = describeDecodeError(e, data);
    // libvips keeps one error buffer per process: concurrent failures can lose the
    // message ("Unknown error"). Probe again alone to get the real reason.
    if (/unknown error/i.test(row.error)) row.error = await probeAlone(data, decode);
  }
  return row;
}

let probeLock: Promise<unknown> = Promise.resolve();

async function probeAlone(data: Buffer, decode: DecodeOptions): Promise<string> {
  const run = probeLock.then(async () => {
    try {
      await probeImage(data, decode);
      return 'corrupt: decoding failed only when run concurrently';
    } catch (e) {
      return describeDecodeError(e, data);
    }
  });
  probeLock = run;
  return run;
}

/** Scans `dir` recursively and writes the manifest to `options.out`. */
export async function scanFolder(dir: string, options: ScanOptions): Promise<ScanSummary> {
  const started = Date.now();
  const root = path.resolve(dir);
  const concurrency = assertInteger('scan concurrency', options.concurrency ?? 8, 1, 256);
  // A rescan replaces the manifest it wrote before; never a file selfsup did not write.
  checkOutputFile(options.out, { isOwn: isScanManifest, what: 'a scan manifest', requireOverwrite: false });
  const previous = loadPrevious(options, root);
  const previousIndex = new Map<string, number>();
  if (previous) for (let i = 0; i < previous.length; i++) previousIndex.set(previous.path[i], i);
  const seenPrevious = new Set<number>();
  const decode: DecodeOptions = { maxPixels: options.maxPixels };

  const builder = new ManifestBuilder();
  const summary: ScanSummary = {
    root,
    out: path.resolve(options.out),
    files: 0,
    ok: 0,
    bad: 0,
    opened: 0,
    reused: 0,
    removed: 0,
    badByReason: {},
    skippedByReason: {},
    badExamples: [],
    seconds: 0,
  };
  const bar = new Progress({ label: 'scan', silent: !options.progress });
  const outAbsolute = summary.out;

  // Rows finish out of order; a reorder buffer keeps the manifest in walk order.
  const pending = new Map<number, ManifestRow>();
  let nextToWrite = 0;
  let issued = 0;
  const inFlight = new Set<Promise<void>>();
  const record = (seq: number, row: ManifestRow): void => {
    pending.set(seq, row);
    while (pending.has(nextToWrite)) {
      const r = pending.get(nextToWrite)!;
      pending.delete(nextToWrite++);
      builder.add(r);
      summary.files++;
      if (r.status === 'ok') summary.ok++;
      else {
        summary.bad++;
        const cat = category(r.error);
        summary.badByReason[cat] = (summary.badByReason[cat] ?? 0) + 1;
        if (summary.badExamples.length < 20) summary.badExamples.push({ path: r.path, reason: r.error });
      }
      options.onProgress?.({ files: summary.files, bad: summary.bad, reused: summary.reused });
      bar.update(summary.files, `${summary.bad} bad`);
    }
  };

  // sharp's operation cache only costs memory in a scan: every file is read once.
  const cacheBefore = sharp.cache();
  sharp.cache(false);
  try {
    await walkAndInspect();
  } finally {
    sharp.cache({ memory: cacheBefore.memory.max ?? 0, files: cacheBefore.files.max, items: cacheBefore.items.max });
  }

  async function walkAndInspect(): Promise<void> {
    for await (const entry of walkFiles(root, { includeHidden: options.includeHidden })) {
      if (entry.kind === 'skip') {
        summary.skippedByReason[entry.reason] = (summary.skippedByReason[entry.reason] ?? 0) + 1;
        continue;
      }
      // Our own output is not data (its temporary files are hidden names).
      if (entry.path === outAbsolute) continue;
      const relative = path.relative(root, entry.path);
      const seq = issued++;
      const prior = previousIndex.get(relative);
      if (prior !== undefined) seenPrevious.add(prior);
      if (entry.kind === 'problem') {
        record(seq, { ...emptyRow(relative), error: entry.reason });
        continue;
      }
      if (prior !== undefined && previous) {
        const reusable =
          previous.bytes[prior] === entry.bytes &&
          previous.mtime[prior] === entry.mtimeMs &&
          !previous.error[prior].startsWith('unreadable');
        if (reusable) {
          summary.reused++;
          record(seq, manifestRow(previous, prior));
          continue;
        }
      }
      summary.opened++;
      const task = inspectFile(entry.path, relative, entry.bytes, entry.mtimeMs, decode).then((row) => {
        record(seq, row);
        inFlight.delete(task);
      });
      inFlight.add(task);
      if (inFlight.size >= concurrency) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
  }
  summary.removed = previous ? previous.length - seenPrevious.size : 0;
  await builder.write(options.out, root);
  summary.seconds = (Date.now() - started) / 1000;
  bar.finish(`${summary.bad} bad`);
  return summary;
}

function emptyRow(relative: string): ManifestRow {
  return {
    path: relative,
    bytes: 0,
    mtime: 0,
    hash: '',
    width: 0,
    height: 0,
    channels: 0,
    format: '',
    status: 'error',
    error: '',
  };
}

/** A human summary: counts, then bad files and skipped entries grouped by reason. */
export function formatScanSummary(s: ScanSummary): string {
  const lines = [
    `Scanned ${s.root}: ${s.files} files, ${s.ok} ok, ${s.bad} bad (${s.opened} opened, ${s.reused} unchanged, ${s.removed} gone) in ${s.seconds.toFixed(1)} s`,
    `Manifest: ${s.out}`,
  ];
  const bad = Object.entries(s.badByReason).sort((a, b) => b[1] - a[1]);
  if (bad.length > 0) {
    lines.push('Bad files (recorded with status "error", skipped by datasets):');
    for (const [reason, n] of bad) lines.push(`  ${n} x ${reason}`);
    for (const e of s.badExamples.slice(0, 10)) lines.push(`    ${e.path}: ${e.reason}`);
  }
  const skipped = Object.entries(s.skippedByReason).sort((a, b) => b[1] - a[1]);
  if (skipped.length > 0) {
    lines.push('Not scanned:');
    for (const [reason, n] of skipped) lines.push(`  ${n} x ${reason}`);
  }
  return lines.join('\n');
}
