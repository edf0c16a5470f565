/**
 * Embeddings as an Arrow IPC file: one row per image with `index` (int32),
 * `path` (utf8), and when the source has labels `label` (int32, -1 = unlabeled)
 * and `class` (utf8, null when unlabeled), then `vector` as
 * FixedSizeList<float32>[D]. pandas (`pd.read_feather`), polars (`pl.read_ipc`)
 * and DuckDB read it directly.
 */
import type { FixedSizeList } from 'apache-arrow';
import { buildTable, type Columns, readArrowTable, tableMetadata, writeArrowTable } from '../util/arrow.js';
import { InputError } from '../util/errors.js';

export interface EmbeddingRows {
  /** Index of each row in the image source. */
  indices: Int32Array;
  /** Human name of each image (file path, or `file.idx#123`). */
  paths: string[];
  /** Class index per row, -1 for unlabeled; omitted when the source has no labels. */
  labels?: Int32Array;
  classNames?: string[];
  /** Row-major [N, D]. */
  vectors: Float32Array;
  /** D, the length of one vector. */
  dim: number;
}

function embeddingColumns(rows: EmbeddingRows): Columns {
  const count = rows.indices.length;
  if (rows.vectors.length !== count * rows.dim) {
    throw new Error(`embeddings: expected ${count} x ${rows.dim} floats but received ${rows.vectors.length}`);
  }
  if (rows.paths.length !== count) throw new Error(`embeddings: ${rows.paths.length} paths for ${count} rows`);
  const columns: Columns = { index: rows.indices, path: rows.paths };
  if (rows.labels) {
    const labels = rows.labels;
    columns.label = labels;
    const names = rows.classNames;
    columns.class = Array.from(labels, (l) => (l < 0 ? null : (names?.[l] ?? String(l))));
  }
  columns.vector = { kind: 'vector', dim: rows.dim, data: rows.vectors };
  return columns;
}

/** Builds the Arrow table (columns index, path, label?, class?, vector). */
export function embeddingsToTable(rows: EmbeddingRows, metadata: Record<string, string> = {}) {
  return buildTable(embeddingColumns(rows), metadata);
}

/** Writes embeddings atomically to `file` (Arrow IPC file format). */
export async function writeEmbeddings(
  file: string,
  rows: EmbeddingRows,
  metadata: Record<string, string> = {},
): Promise<void> {
  await writeArrowTable(file, embeddingColumns(rows), metadata);
}

/** Reads a file written by {@link writeEmbeddings}; names the file on any problem. */
export function readEmbeddings(file: string): EmbeddingRows & { metadata: Record<string, string> } {
  const table = readArrowTable(file);
  const vectorColumn = table.getChild('vector');
  const indexColumn = table.getChild('index');
  const pathColumn = table.getChild('path');
  const vectorField = table.schema.fields.find((f) => f.name === 'vector');
  if (!vectorColumn || !indexColumn || !pathColumn || vectorField?.typeId !== 16) {
    throw new InputError(file, 'expected columns index, path and vector (a file written by selfsup embed)');
  }
  const dim = (vectorField.type as FixedSizeList).listSize;
  const count = table.numRows;
  const vectors = new Float32Array(count * dim);
  for (let i = 0; i < count; i++) vectors.set(vectorColumn.get(i).toArray() as Float32Array, i * dim);
  const labelColumn = table.getChild('label');
  const classColumn = table.getChild('class');
  const labels = labelColumn ? Int32Array.from(labelColumn.toArray() as Int32Array) : undefined;
  let classNames: string[] | undefined;
  if (labels && classColumn) {
    classNames = [];
    for (let i = 0; i < count; i++) if (labels[i] >= 0) classNames[labels[i]] = classColumn.get(i) as string;
  }
  return {
    indices: Int32Array.from(indexColumn.toArray() as Int32Array),
    paths: Array.from({ length: count }, (_, i) => pathColumn.get(i) as string),
    labels,
    classNames,
    vectors,
    dim,
    metadata: tableMetadata(table),
  };
}
