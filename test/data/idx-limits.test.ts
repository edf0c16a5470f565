/** IDX files are bounded: the declared shape is checked before the data is decompressed. */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { classNamesNear, encodeIdx, idxDataset, MAX_IDX_BYTES, readIdx } from '../../src/data/datasets/idx.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'selfsup-idx-limits-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The 16-byte IDX header of unsigned-byte images [n, h, w]. */
function header(shape: number[]): Buffer {
  return Buffer.from(encodeIdx(shape, new Uint8Array(0)));
}

describe('IDX limits', () => {
  it('refuses a gzip bomb by its declared shape before decompressing the data', () => {
    // 4,000,000 images of 28 x 28 declared: 3.1 GB once decompressed.
    const bomb = path.join(dir, 'bomb-images-idx3-ubyte.gz');
    writeFileSync(bomb, gzipSync(Buffer.concat([header([4_000_000, 28, 28]), Buffer.alloc(4 * 1024 * 1024)])));
    expect(() => readIdx(bomb)).toThrow(
      `${bomb}: shape [4000000, 28, 28] declares 3136000016 bytes once decompressed, over the limit of ${MAX_IDX_BYTES} bytes (1 GiB)`,
    );
  });

  it('refuses gzip data that inflates past what its header declares', () => {
    const liar = path.join(dir, 'liar.idx.gz');
    writeFileSync(liar, gzipSync(Buffer.concat([header([10, 28, 28]), Buffer.alloc(32 * 1024 * 1024)])));
    expect(() => readIdx(liar)).toThrow(
      `${liar}: decompresses to more than the 7856 bytes its shape [10, 28, 28] declares`,
    );
  });

  it('applies the limit to uncompressed files and to special files', () => {
    const plain = path.join(dir, 'plain.idx');
    writeFileSync(plain, Buffer.concat([header([100, 28, 28]), Buffer.alloc(100 * 784)]));
    expect(readIdx(plain).shape).toEqual([100, 28, 28]);
    expect(() => readIdx(plain, { maxBytes: 50_000 })).toThrow(
      `${plain}: the IDX file is 78416 bytes, over the limit of 50000 bytes (48.8 KiB)`,
    );
    expect(() => idxDataset('/dev/zero')).toThrow(
      '/dev/zero: cannot read the IDX file: not a regular file (a character device); refusing to open it',
    );
  });

  it('still reads gzipped files whole', () => {
    const pixels = Uint8Array.from({ length: 3 * 5 * 4 }, (_, i) => i);
    const file = path.join(dir, 'ok.idx.gz');
    writeFileSync(file, gzipSync(encodeIdx([3, 5, 4], pixels)));
    const read = readIdx(file);
    expect(read.shape).toEqual([3, 5, 4]);
    expect([...read.data]).toEqual([...pixels]);
    const cut = path.join(dir, 'cut.idx.gz');
    writeFileSync(cut, gzipSync(Buffer.from(encodeIdx([3, 5, 4], pixels)).subarray(0, 30)));
    expect(() => readIdx(cut)).toThrow(`${cut}: truncated: shape [3, 5, 4] needs 76 bytes, file has 30`);
  });

  it('reads class names beside an IDX file only from a regular file', () => {
    const folder = path.join(dir, 'named');
    mkdirSync(folder);
    writeFileSync(path.join(folder, 'classes.txt'), 'cat\r\ndog\n\n');
    expect(classNamesNear(path.join(folder, 'train-images-idx3-ubyte'))).toEqual(['cat', 'dog']);
    const piped = path.join(dir, 'piped');
    mkdirSync(piped);
    execFileSync('mkfifo', [path.join(piped, 'classes.txt')]);
    expect(() => classNamesNear(path.join(piped, 'train-images-idx3-ubyte'))).toThrow(
      `${path.join(piped, 'classes.txt')}: cannot read the class names file: not a regular file (a FIFO (named pipe)); refusing to open it`,
    );
  });
});
