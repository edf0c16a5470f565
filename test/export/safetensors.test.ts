import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  decodeSafetensors,
  encodeSafetensors,
  entryToBigInt64,
  entryToFloat32,
  float16BitsToFloat32,
  float32ToFloat16Bits,
  readSafetensors,
  writeSafetensors,
} from '../../src/export/safetensors.js';
import { InputError } from '../../src/util/errors.js';

const FIXTURES = path.join(import.meta.dirname, '..', 'fixtures', 'torch');
const work = mkdtempSync(path.join(os.tmpdir(), 'selfsup-safetensors-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A file from a header object and a data block, with the length prefix computed (or forced). */
function rawFile(header: unknown, data: Uint8Array, headerLength?: bigint): Uint8Array {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, headerLength ?? BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

describe('safetensors writer', () => {
  it('pads the JSON header with spaces to a multiple of 8 and lays tensors out contiguously', () => {
    for (const name of ['a', 'ab', 'abc', 'abcd', 'abcde', 'abcdef', 'abcdefg', 'abcdefgh']) {
      const bytes = encodeSafetensors({ [name]: { dtype: 'F32', shape: [1], values: Float32Array.of(1) } });
      const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
      expect(n % 8).toBe(0);
      const header = Buffer.from(bytes.subarray(8, 8 + n)).toString('utf8');
      expect(header.trimEnd().endsWith('}')).toBe(true);
      expect(/^ *$/.test(header.slice(header.trimEnd().length))).toBe(true);
      expect(bytes.length).toBe(8 + n + 4);
    }
  });

  it('round-trips F32 bit for bit, I64 exactly, F16 with round-to-nearest-even, and metadata', async () => {
    const f32 = Float32Array.of(1.5, -0, 3.4028234663852886e38, 1e-45, Number.NaN, -7.25);
    const i64 = BigInt64Array.of(0n, -1n, 2n ** 62n, 5n);
    const f16Source = Float32Array.of(1, 1 / 3, 65504, 70000, 1e-8, 2 ** -24, -2.5);
    const file = path.join(work, 'mixed.safetensors');
    // Odd-sized F16 first: the writer orders by item size so F32/I64 stay aligned.
    await writeSafetensors(
      file,
      {
        half: { dtype: 'F16', shape: [7], values: f16Source },
        weights: { dtype: 'F32', shape: [2, 3], values: f32 },
        counter: { dtype: 'I64', shape: [4], values: i64 },
        scalar: { dtype: 'I64', shape: [], values: BigInt64Array.of(42n) },
      },
      { arch: 'resnet18', mean: '[0.5]' },
    );
    const read = readSafetensors(file);
    expect(read.metadata).toEqual({ arch: 'resnet18', mean: '[0.5]' });
    const weights = read.tensors.get('weights')!;
    expect(weights.dtype).toBe('F32');
    expect(weights.shape).toEqual([2, 3]);
    expect(Buffer.from(weights.bytes).equals(Buffer.from(f32.buffer))).toBe(true);
    expect(Array.from(entryToBigInt64(read.tensors.get('counter')!))).toEqual(Array.from(i64));
    expect(read.tensors.get('scalar')!.shape).toEqual([]);
    expect(entryToBigInt64(read.tensors.get('scalar')!)[0]).toBe(42n);
    const half = Array.from(entryToFloat32(read.tensors.get('half')!));
    expect(half[0]).toBe(1);
    expect(half[1]).toBe(0.333251953125); // nearest half to 1/3
    expect(half[2]).toBe(65504);
    expect(half[3]).toBe(Number.POSITIVE_INFINITY); // overflow
    expect(half[4]).toBe(0); // underflow
    expect(half[5]).toBe(2 ** -24); // smallest subnormal
    expect(half[6]).toBe(-2.5);
  });

  it('writes BF16 with round-to-nearest-even and reads it back', () => {
    const values = Float32Array.of(1, -3.140625, 1 + 2 ** -8, 1 + 3 * 2 ** -9, 1e30, -0);
    const read = decodeSafetensors(encodeSafetensors({ b: { dtype: 'BF16', shape: [6], values } }));
    const back = Array.from(entryToFloat32(read.tensors.get('b')!));
    expect(read.tensors.get('b')!.bytes.length).toBe(12);
    expect(back.slice(0, 4)).toEqual([1, -3.140625, 1, 1 + 2 ** -7]); // exact, exact, tie -> even, up
    expect(Math.abs(back[4] - 1e30) / 1e30).toBeLessThan(2 ** -8);
    expect(Object.is(back[5], -0)).toBe(true);
  });

  it('converts every half-precision bit pattern back to itself', () => {
    const mismatches: number[] = [];
    let checked = 0;
    for (let bits = 0; bits < 0x10000; bits++) {
      const value = float16BitsToFloat32(bits);
      if (Number.isNaN(value)) continue;
      checked++;
      if (float32ToFloat16Bits(value) !== bits) mismatches.push(bits);
    }
    expect(checked).toBe(0x10000 - 2 * 1023);
    expect(mismatches).toEqual([]);
  });
});

describe('safetensors reader', () => {
  it('reads a file written by the reference safetensors library (F32, F16, BF16, I64, scalar, empty)', () => {
    const read = readSafetensors(path.join(FIXTURES, 'dtypes.safetensors'));
    const expected = JSON.parse(readFileSync(path.join(FIXTURES, 'dtypes.expected.json'), 'utf8')) as Record<
      string,
      { shape: number[]; values: Array<number | string> }
    >;
    expect(read.metadata.producer).toBe('safetensors.torch');
    expect([...read.tensors.keys()].sort()).toEqual(Object.keys(expected).sort());
    for (const [name, { shape, values }] of Object.entries(expected)) {
      const entry = read.tensors.get(name)!;
      expect(entry.shape).toEqual(shape);
      if (entry.dtype === 'I64') {
        expect(Array.from(entryToBigInt64(entry), String)).toEqual(values);
      } else {
        expect(Array.from(entryToFloat32(entry))).toEqual((values as number[]).map((v) => Math.fround(v)));
      }
    }
    expect(read.tensors.get('bf16')!.dtype).toBe('BF16');
  });

  const f32Bytes = new Uint8Array(Float32Array.of(1, 2).buffer);
  const good = { t: { dtype: 'F32', shape: [2], data_offsets: [0, 8] } };

  it('accepts a minimal valid file (unpadded header too)', () => {
    expect(entryToFloat32(decodeSafetensors(rawFile(good, f32Bytes), 'ok.safetensors').tensors.get('t')!)).toEqual(
      Float32Array.of(1, 2),
    );
  });

  const cases: Array<[string, Uint8Array, string]> = [
    ['too short', new Uint8Array(5), '5 bytes is too short for the 8-byte header length'],
    ['hostile header length', rawFile(good, f32Bytes, 2n ** 62n), 'exceeds the 104857600-byte limit'],
    ['header past the end', rawFile(good, f32Bytes, 1000n), 'header length 1000 runs past the end of the file'],
    ['truncated data', rawFile(good, f32Bytes.subarray(0, 6)), 'go beyond the 6 data bytes (truncated?)'],
    [
      'offsets beyond the file',
      rawFile({ t: { dtype: 'F32', shape: [2], data_offsets: [8, 16] } }, f32Bytes),
      'go beyond',
    ],
    [
      'size disagrees with shape',
      rawFile({ t: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, f32Bytes),
      'needs 12 bytes',
    ],
    [
      'unknown dtype',
      rawFile({ t: { dtype: 'F8', shape: [2], data_offsets: [0, 8] } }, f32Bytes),
      'unsupported dtype "F8"',
    ],
    ['negative shape', rawFile({ t: { dtype: 'F32', shape: [-2], data_offsets: [0, 8] } }, f32Bytes), 'invalid shape'],
    [
      'bad offsets',
      rawFile({ t: { dtype: 'F32', shape: [2], data_offsets: [8, 0] } }, f32Bytes),
      'invalid data_offsets',
    ],
    [
      'overlap',
      rawFile(
        {
          a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
          b: { dtype: 'F32', shape: [1], data_offsets: [4, 8] },
        },
        f32Bytes,
      ),
      'overlap or hole',
    ],
    ['trailing bytes', rawFile(good, new Uint8Array(12)), 'tensors cover 8 data bytes but the file holds 12'],
    ['not JSON', rawFile('{"t": nope}', f32Bytes), 'header is not UTF-8 JSON'],
    ['JSON array', rawFile('[1, 2]   ', f32Bytes), 'header is not a JSON object'],
    ['non-string metadata', rawFile({ __metadata__: { a: 1 }, ...good }, f32Bytes), '"__metadata__.a" is not a string'],
  ];
  for (const [label, bytes, message] of cases) {
    it(`rejects ${label} with an error naming the file`, () => {
      let error: unknown;
      try {
        decodeSafetensors(bytes, `/data/${label.replace(/ /g, '-')}.safetensors`);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(InputError);
      expect((error as Error).message).toContain(
        `/data/${label.replace(/ /g, '-')}.safetensors: not a valid safetensors file`,
      );
      expect((error as Error).message).toContain(message);
    });
  }

  it('rejects a truncated file on disk and a missing file, naming them', () => {
    const file = path.join(work, 'cut.safetensors');
    const whole = encodeSafetensors({ w: { dtype: 'F32', shape: [4, 4], values: new Float32Array(16) } });
    writeFileSync(file, whole.subarray(0, whole.length - 10));
    expect(() => readSafetensors(file)).toThrow(`${file}: not a valid safetensors file`);
    expect(() => readSafetensors(path.join(work, 'absent.safetensors'))).toThrow(
      'absent.safetensors: cannot read the safetensors file: does not exist',
    );
  });
});
