/**
 * Reading and writing IDX files (the Fashion-MNIST / MNIST format: a magic number giving the
 * element type and rank, the dimensions as big-endian uint32, then the data), gzipped, for the
 * scripts that cut samples out of the IDX files (scripts/make-demo-data.mjs,
 * bench/fewshot-fashion-mnist.sh). selfsup itself reads IDX in src/data/datasets/idx.ts.
 */
import { readFileSync } from 'node:fs';
import { gunzipSync, gzipSync } from 'node:zlib';

/** A gzipped unsigned-byte IDX file: its shape and its data (a view of the decompressed file). */
export function readIdx(file) {
  const buf = gunzipSync(readFileSync(file));
  const dims = buf[3];
  const shape = [];
  for (let i = 0; i < dims; i++) shape.push(buf.readUInt32BE(4 + 4 * i));
  return { shape, data: buf.subarray(4 + 4 * dims) };
}

/** The gzipped bytes of an unsigned-byte IDX file of this shape. */
export function idxBytes(shape, data) {
  const header = Buffer.alloc(4 + 4 * shape.length);
  header[2] = 0x08; // unsigned byte
  header[3] = shape.length;
  shape.forEach((d, i) => {
    header.writeUInt32BE(d, 4 + 4 * i);
  });
  return gzipSync(Buffer.concat([header, Buffer.from(data)]), { level: 9 });
}
