/**
 * Arrow IPC tables (manifests, metrics, embeddings, predictions). Files are in
 * the Arrow IPC *file* format (Feather v2), which pandas (`read_feather`),
 * polars (`read_ipc`) and DuckDB read directly. Writes are atomic.
 */
import {
  Bool,
  Field,
  FixedSizeList,
  Float32,
  Float64,
  Int32,
  Int64,
  makeData,
  makeVector,
  Schema,
  Table,
  tableFromIPC,
  tableToIPC,
  Utf8,
  type Vector,
  vectorFromArray,
} from 'apache-arrow';
import { writeFileAtomic, writeFileAtomicSync } from './atomic.js';
import { InputError } from './errors.js';
import { readRegularFile } from './files.js';

/** Largest Arrow file read (a 100,000-row manifest is a few MB; embeddings of a million images ~2 GB at 512-d). */
export const MAX_TABLE_BYTES = 4 * 1024 * 1024 * 1024 - 1;

/** A fixed-length float32 vector per row (embeddings, probabilities): data is [rows * dim]. */
export interface VectorColumn {
  kind: 'vector';
  dim: number;
  data: Float32Array;
}

export type ColumnData =
  | Float32Array
  | Float64Array
  | Int32Array
  | BigInt64Array
  | number[]
  | Array<string | null>
  | boolean[]
  | VectorColumn;

export type Columns = Record<string, ColumnData>;

function toVector(name: string, col: ColumnData): Vector {
  if (
    col instanceof Float32Array ||
    col instanceof Float64Array ||
    col instanceof Int32Array ||
    col instanceof BigInt64Array
  ) {
    return makeVector(col);
  }
  if (!Array.isArray(col) && (col as VectorColumn).kind === 'vector') {
    const v = col as VectorColumn;
    if (v.data.length % v.dim !== 0)
      throw new Error(`column ${name}: vector data length ${v.data.length} is not a multiple of ${v.dim}`);
    const child = makeData({ type: new Float32(), length: v.data.length, nullCount: 0, data: v.data });
    const type = new FixedSizeList(v.dim, new Field('item', new Float32(), false));
    return makeVector(makeData({ type, length: v.data.length / v.dim, nullCount: 0, child }));
  }
  const arr = col as unknown[];
  const first = arr.find((x) => x !== null && x !== undefined);
  if (typeof first === 'string' || first === undefined) return vectorFromArray(arr as (string | null)[], new Utf8());
  if (typeof first === 'boolean') return vectorFromArray(arr as boolean[], new Bool());
  if (typeof first === 'number') return makeVector(Float64Array.from(arr as number[]));
  throw new Error(`column ${name}: unsupported values (${typeof first})`);
}

/** The field an entry of a column spec names: `perClass:int32` -> `perClass`. */
type SpecField<Entry extends string> = Entry extends `${infer Field}:${string}` ? Field : Entry;
/** Every field a space-separated column spec names. */
type SpecFields<Spec extends string> = Spec extends `${infer Head} ${infer Tail}`
  ? SpecField<Head> | SpecFields<Tail>
  : SpecField<Spec>;

/** A column's name in a table: its field in snake_case (`macroF1Mean` -> `macro_f1_mean`). */
export function snakeCase(field: string): string {
  return field.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/**
 * The columns of a table with one row per object of `rows`: `spec` lists the fields,
 * space-separated and in column order, each with its type after a colon (`int32`, `utf8`;
 * none: float64), e.g. `'arm:utf8 seed:int32 accuracy'`. Columns are named in snake_case.
 */
export function rowColumns<Row extends object, Spec extends string>(
  rows: readonly Row[],
  spec: Spec & (SpecFields<Spec> extends keyof Row ? unknown : never),
): Columns {
  const columns: Columns = {};
  for (const entry of spec.split(' ')) {
    const [field, type = 'float64'] = entry.split(':');
    const value = (row: Row) => (row as Record<string, unknown>)[field];
    if (type === 'int32') columns[snakeCase(field)] = Int32Array.from(rows, (r) => value(r) as number);
    else if (type === 'utf8') columns[snakeCase(field)] = rows.map((r) => value(r) as string | null);
    else if (type === 'float64') columns[snakeCase(field)] = Float64Array.from(rows, (r) => value(r) as number);
    else throw new Error(`column spec "${entry}": unknown type ${type} (int32, utf8 or float64)`);
  }
  return columns;
}

/** Builds a table; all columns must have the same number of rows. */
export function buildTable(columns: Columns, metadata: Record<string, string> = {}): Table {
  const vectors: Record<string, Vector> = {};
  let rows: number | undefined;
  for (const [name, col] of Object.entries(columns)) {
    const v = toVector(name, col);
    if (rows !== undefined && v.length !== rows) {
      throw new Error(`column ${name} has ${v.length} rows but earlier columns have ${rows}`);
    }
    rows = v.length;
    vectors[name] = v;
  }
  const table = new Table(vectors);
  if (Object.keys(metadata).length === 0) return table;
  const schema = new Schema(table.schema.fields, new Map(Object.entries(metadata)));
  return new Table(schema, table.batches);
}

export function tableBytes(columns: Columns, metadata?: Record<string, string>): Uint8Array {
  return tableToIPC(buildTable(columns, metadata), 'file');
}

/** Writes columns as an Arrow IPC file, atomically. */
export async function writeArrowTable(
  path: string,
  columns: Columns,
  metadata?: Record<string, string>,
): Promise<void> {
  await writeFileAtomic(path, tableBytes(columns, metadata));
}

export function writeArrowTableSync(path: string, columns: Columns, metadata?: Record<string, string>): void {
  writeFileAtomicSync(path, tableBytes(columns, metadata));
}

/** Reads an Arrow IPC file (or stream); errors name the file. */
export function readArrowTable(path: string): Table {
  const bytes = readRegularFile(path, { maxBytes: MAX_TABLE_BYTES, what: 'Arrow table' });
  try {
    return tableFromIPC(bytes);
  } catch (e) {
    throw new InputError(path, `not a readable Arrow IPC file (${(e as Error).message})`);
  }
}

/** A column as plain JS values (numbers, bigint, strings, booleans, or Float32Array rows for vectors). */
export function columnValues(table: Table, name: string): unknown[] {
  const col = table.getChild(name);
  if (!col) {
    const names = table.schema.fields.map((f) => f.name).join(', ');
    throw new Error(`no column "${name}" (columns: ${names})`);
  }
  const out: unknown[] = new Array(col.length);
  for (let i = 0; i < col.length; i++) {
    const v = col.get(i);
    out[i] = v && typeof v === 'object' && 'toArray' in v ? Float32Array.from((v as Vector).toArray()) : v;
  }
  return out;
}

/** Table metadata as a plain object. */
export function tableMetadata(table: Table): Record<string, string> {
  return Object.fromEntries(table.schema.metadata.entries());
}

export { Float64, Int32, Int64 };
