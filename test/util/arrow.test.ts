import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  buildTable,
  columnValues,
  readArrowTable,
  rowColumns,
  tableMetadata,
  writeArrowTable,
} from '../../src/util/arrow.js';

describe('arrow tables', () => {
  it('round-trips numbers, strings, nulls, booleans, bigints and vectors, with metadata', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'selfsup-arrow-'));
    const file = path.join(dir, 't.arrow');
    await writeArrowTable(
      file,
      {
        index: Int32Array.from([0, 1, 2]),
        score: Float64Array.from([0.5, 1.5, -2]),
        path: ['a.png', null, 'c.png'],
        ok: [true, false, true],
        bytes: BigInt64Array.from([1n, 2n, 3n]),
        vector: { kind: 'vector', dim: 2, data: Float32Array.from([1, 2, 3, 4, 5, 6]) },
      },
      { producer: 'test' },
    );
    expect(readdirSync(dir)).toEqual(['t.arrow']); // no temp file left behind
    const t = readArrowTable(file);
    expect(t.numRows).toBe(3);
    expect(columnValues(t, 'index')).toEqual([0, 1, 2]);
    expect(columnValues(t, 'score')).toEqual([0.5, 1.5, -2]);
    expect(columnValues(t, 'path')).toEqual(['a.png', null, 'c.png']);
    expect(columnValues(t, 'ok')).toEqual([true, false, true]);
    expect(columnValues(t, 'bytes')).toEqual([1n, 2n, 3n]);
    expect(columnValues(t, 'vector')).toEqual([
      Float32Array.from([1, 2]),
      Float32Array.from([3, 4]),
      Float32Array.from([5, 6]),
    ]);
    expect(tableMetadata(t)).toEqual({ producer: 'test' });
    expect(() => columnValues(t, 'nope')).toThrow('no column "nope" (columns: index, score, path, ok, bytes, vector)');
  });

  it('names the file when it is not Arrow, and rejects ragged columns', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'selfsup-arrow-'));
    const bad = path.join(dir, 'bad.arrow');
    writeFileSync(bad, 'not arrow at all');
    expect(() => readArrowTable(bad)).toThrow(`${bad}: not a readable Arrow IPC file`);
    await expect(writeArrowTable(path.join(dir, 'x.arrow'), { a: [1, 2], b: [1] })).rejects.toThrow(
      'column b has 1 rows but earlier columns have 2',
    );
  });

  it('rowColumns: one column per listed field, in order, snake_case names, typed int32/utf8/float64 (also with no rows)', () => {
    const rows = [
      { arm: 'scratch', perClass: 10, macroF1: 0.25 },
      { arm: 'pretrained', perClass: 100, macroF1: 0.75 },
    ];
    const t = buildTable(rowColumns(rows, 'arm:utf8 perClass:int32 macroF1'));
    expect(t.schema.fields.map((f) => `${f.name}:${f.type}`)).toEqual([
      'arm:Utf8',
      'per_class:Int32',
      'macro_f1:Float64',
    ]);
    expect(columnValues(t, 'per_class')).toEqual([10, 100]);
    expect(columnValues(t, 'macro_f1')).toEqual([0.25, 0.75]);
    const empty = buildTable(rowColumns([] as typeof rows, 'arm:utf8 perClass:int32 macroF1'));
    expect(empty.schema.fields.map((f) => `${f.name}:${f.type}`)).toEqual([
      'arm:Utf8',
      'per_class:Int32',
      'macro_f1:Float64',
    ]);
    expect(() => rowColumns(rows, 'perClass:int64' as 'perClass')).toThrow(/unknown type int64/);
  });
});
