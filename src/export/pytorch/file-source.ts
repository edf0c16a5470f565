/**
 * Random access to a file without reading it whole: every read names an absolute
 * offset and a length that is checked against the file size first, so a hostile
 * length can never make us allocate more than the file holds.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { InputError } from '../../util/errors.js';

export class FileSource {
  readonly size: number;
  private fd: number | undefined;

  constructor(readonly file: string) {
    try {
      this.fd = openSync(file, 'r');
      this.size = fstatSync(this.fd).size;
    } catch (e) {
      if (this.fd !== undefined) closeSync(this.fd);
      throw new InputError(file, `cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
  }

  /**
   * `length` bytes at `offset`, in a buffer of their own (not pooled, offset 0, so
   * typed views of it are aligned); an error naming `what` when they are not all in the file.
   */
  read(offset: number, length: number, what = 'data'): Buffer {
    if (this.fd === undefined) throw new Error(`${this.file} was closed`);
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
      throw new InputError(this.file, `invalid range for ${what}: offset ${offset}, length ${length}`);
    }
    if (offset + length > this.size) {
      throw new InputError(
        this.file,
        `${what} needs bytes ${offset}..${offset + length} but the file has ${this.size} bytes (truncated or corrupt)`,
      );
    }
    const out = Buffer.from(new ArrayBuffer(length));
    let done = 0;
    while (done < length) {
      const n = readSync(this.fd, out, done, length - done, offset + done);
      if (n === 0) throw new InputError(this.file, `unexpected end of file while reading ${what}`);
      done += n;
    }
    return out;
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}
