/**
 * The scan manifest: an Arrow IPC file with one row per file found.
 *
 * | column   | type    | meaning                                                    |
 * |----------|---------|------------------------------------------------------------|
 * | path     | utf8    | path relative to the scanned folder (`root` in metadata)   |
 * | bytes    | float64 | file size                                                  |
 * | mtime    | float64 | modification time, ms since 1970 (UTC)                     |
 * | hash     | utf8    | sha1 of the file's bytes, hex ("" when unreadable)         |
 * | width    | int32   | px after EXIF orientation (0 when status is error)         |
 * | height   | int32   | px after EXIF orientation                                  |
 * | channels | int32   | channels stored in the file (4 = CMYK or RGBA)             |
 * | format   | utf8    | jpeg, png, webp, gif, tiff, avif, ... ("" when unknown)    |
 * | status   | utf8    | "ok" or "error"                                            |
 * | error    | utf8    | the reason when status is "error", else ""                 |
 *
 * Metadata: `root` (absolute scanned folder), `created` (ISO time), `selfsup_manifest` ("1").
 */
import { readArrowTable, writeArrowTable } from '../util/arrow.js';
import { InputError } from '../util/errors.js';

export interface ManifestRow {
  path: string;
  bytes: number;
  mtime: number;
  hash: string;
  width: number;
  height: number;
  channels: number;
  format: string;
  status: 'ok' | 'error';
  error: string;
}

/** Growable typed columns: a 100,000-row manifest is a few MB, not 100,000 objects. */
export class ManifestBuilder {
  private capacity = 1024;
  length = 0;
  readonly paths: string[] = [];
  readonly hashes: string[] = [];
  readonly formats: string[] = [];
  readonly statuses: Array<'ok' | 'error'> = [];
  readonly errors: string[] = [];
  private bytes = new Float64Array(this.capacity);
  private mtimes = new Float64Array(this.capacity);
  private widths = new Int32Array(this.capacity);
  private heights = new Int32Array(this.capacity);
  private channels = new Int32Array(this.capacity);

  add(row: ManifestRow): void {
    if (this.length === this.capacity) this.grow();
    const i = this.length++;
    this.paths.push(row.path);
    this.hashes.push(row.hash);
    this.formats.push(row.format);
    this.statuses.push(row.status);
    this.errors.push(row.error);
    this.bytes[i] = row.bytes;
    this.mtimes[i] = row.mtime;
    this.widths[i] = row.width;
    this.heights[i] = row.height;
    this.channels[i] = row.channels;
  }

  private grow(): void {
    this.capacity *= 2;
    const grow = <T extends Float64Array | Int32Array>(old: T, make: (n: number) => T): T => {
      const next = make(this.capacity);
      next.set(old);
      return next;
    };
    this.bytes = grow(this.bytes, (n) => new Float64Array(n));
    this.mtimes = grow(this.mtimes, (n) => new Float64Array(n));
    this.widths = grow(this.widths, (n) => new Int32Array(n));
    this.heights = grow(this.heights, (n) => new Int32Array(n));
    this.channels = grow(this.channels, (n) => new Int32Array(n));
  }

  /** Writes the manifest atomically (temporary file + rename). */
  async write(file: string, root: string): Promise<void> {
    const n = this.length;
    await writeArrowTable(
      file,
      {
        path: this.paths,
        bytes: this.bytes.slice(0, n),
        mtime: this.mtimes.slice(0, n),
        hash: this.hashes,
        width: this.widths.slice(0, n),
        height: this.heights.slice(0, n),
        channels: this.channels.slice(0, n),
        format: this.formats,
        status: this.statuses,
        error: this.errors,
      },
      { root, created: new Date().toISOString(), selfsup_manifest: '1' },
    );
  }
}

/** A manifest read back: column arrays plus the scanned root. */
export interface Manifest {
  root: string;
  length: number;
  path: string[];
  bytes: Float64Array;
  mtime: Float64Array;
  hash: string[];
  width: Int32Array;
  height: Int32Array;
  channels: Int32Array;
  format: string[];
  status: string[];
  error: string[];
}

const REQUIRED = ['path', 'bytes', 'mtime', 'hash', 'width', 'height', 'channels', 'format', 'status', 'error'];

/** Reads a manifest written by `scanFolder`; errors name the file and the missing column. */
export function readScanManifest(file: string): Manifest {
  const table = readArrowTable(file);
  const names = table.schema.fields.map((f) => f.name);
  for (const name of REQUIRED) {
    if (!names.includes(name)) {
      throw new InputError(file, `not a selfsup manifest: no column "${name}" (columns: ${names.join(', ')})`);
    }
  }
  const root = table.schema.metadata.get('root');
  if (!root) throw new InputError(file, 'not a selfsup manifest: no "root" in the table metadata');
  const strings = (name: string): string[] => {
    const col = table.getChild(name)!;
    const out = new Array<string>(col.length);
    for (let i = 0; i < col.length; i++) out[i] = String(col.get(i) ?? '');
    return out;
  };
  const numbers = <T extends Float64Array | Int32Array>(name: string, make: (n: number) => T): T => {
    const col = table.getChild(name)!;
    const out = make(col.length);
    for (let i = 0; i < col.length; i++) out[i] = Number(col.get(i));
    return out;
  };
  return {
    root,
    length: table.numRows,
    path: strings('path'),
    bytes: numbers('bytes', (n) => new Float64Array(n)),
    mtime: numbers('mtime', (n) => new Float64Array(n)),
    hash: strings('hash'),
    width: numbers('width', (n) => new Int32Array(n)),
    height: numbers('height', (n) => new Int32Array(n)),
    channels: numbers('channels', (n) => new Int32Array(n)),
    format: strings('format'),
    status: strings('status'),
    error: strings('error'),
  };
}

/** Row `i` of a manifest as an object. */
export function manifestRow(m: Manifest, i: number): ManifestRow {
  return {
    path: m.path[i],
    bytes: m.bytes[i],
    mtime: m.mtime[i],
    hash: m.hash[i],
    width: m.width[i],
    height: m.height[i],
    channels: m.channels[i],
    format: m.format[i],
    status: m.status[i] === 'ok' ? 'ok' : 'error',
    error: m.error[i],
  };
}
