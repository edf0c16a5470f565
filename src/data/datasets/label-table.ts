/** Labelled images listed in a CSV or Arrow file with a path column and a label column. */
import path from 'node:path';
import { readArrowTable } from '../../util/arrow.js';
import { InputError } from '../../util/errors.js';
import { readRegularTextFile } from '../../util/files.js';
import type { DecodeOptions } from '../decode.js';
import { FileListSource, indexLabels } from './file-list.js';

export interface LabelTableOptions {
  /** Folder that relative paths resolve against (default: the table's folder). */
  root?: string;
  /** Column names (default "path" and "label"). */
  pathColumn?: string;
  labelColumn?: string;
  decode?: DecodeOptions;
}

/** Largest CSV label table read (a million rows of 100-character paths is ~100 MB). */
export const MAX_LABEL_TABLE_BYTES = 512 * 1024 * 1024;

/** Formats rows as CSV text (RFC 4180): fields with commas, quotes or newlines are quoted. */
export function formatCsv(rows: Array<Array<string | number | null | undefined>>): string {
  const field = (v: string | number | null | undefined): string => {
    const text = v === null || v === undefined ? '' : String(v);
    return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
  };
  return rows.map((row) => row.map(field).join(',')).join('\n') + '\n';
}

/** Parses CSV text (RFC 4180: quotes, doubled quotes, commas and newlines inside quotes). */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        field += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else field += ch;
    } else if (ch === '"' && field === '') quoted = true;
    else if (ch === ',') {
      row.push(field);
      field = '';
    } else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') i++;
      row.push(field);
      field = '';
      if (row.length > 1 || row[0] !== '') rows.push(row);
      row = [];
    } else field += ch;
  }
  if (field !== '' || row.length > 0) {
    row.push(field);
    rows.push(row);
  }
  return rows;
}

function readColumns(file: string, pathColumn: string, labelColumn: string): { paths: string[]; labels: string[] } {
  if (/\.(arrow|feather|ipc)$/i.test(file)) {
    const table = readArrowTable(file);
    const names = table.schema.fields.map((f) => f.name);
    for (const name of [pathColumn, labelColumn]) {
      if (!names.includes(name)) throw new InputError(file, `no column "${name}" (columns: ${names.join(', ')})`);
    }
    const p = table.getChild(pathColumn)!;
    const l = table.getChild(labelColumn)!;
    const paths: string[] = [];
    const labels: string[] = [];
    for (let i = 0; i < table.numRows; i++) {
      paths.push(String(p.get(i)));
      const v = l.get(i);
      labels.push(v === null || v === undefined ? '' : String(v));
    }
    return { paths, labels };
  }
  const text = readRegularTextFile(file, { maxBytes: MAX_LABEL_TABLE_BYTES, what: 'label table' });
  const rows = parseCsv(text);
  if (rows.length === 0) throw new InputError(file, 'empty CSV (expected a header row with path,label)');
  const header = rows[0].map((h) => h.trim());
  const pathAt = header.indexOf(pathColumn);
  const labelAt = header.indexOf(labelColumn);
  if (pathAt < 0 || labelAt < 0) {
    const missing = pathAt < 0 ? pathColumn : labelColumn;
    throw new InputError(file, `no column "${missing}" in the header (columns: ${header.join(', ')})`);
  }
  const paths: string[] = [];
  const labels: string[] = [];
  rows.slice(1).forEach((row, i) => {
    if (row.length <= Math.max(pathAt, labelAt)) {
      throw new InputError(file, `line ${i + 2} has ${row.length} fields, expected ${header.length}`);
    }
    paths.push(row[pathAt]);
    labels.push(row[labelAt].trim());
  });
  return { paths, labels };
}

/**
 * A dataset from `file` (.csv, or .arrow/.feather/.ipc) of path,label rows. An
 * empty label means unlabeled (-1). Classes are the distinct labels, sorted.
 */
export function labelTableDataset(file: string, options: LabelTableOptions = {}): FileListSource {
  const { paths, labels } = readColumns(file, options.pathColumn ?? 'path', options.labelColumn ?? 'label');
  if (paths.length === 0) throw new InputError(file, 'no rows');
  const root = options.root ?? path.dirname(path.resolve(file));
  const absolute = paths.map((p) => path.resolve(root, p));
  const indexed = indexLabels(labels);
  return new FileListSource(absolute, indexed.labels, indexed.classNames, options.decode);
}
