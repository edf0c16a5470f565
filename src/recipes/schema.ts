/**
 * A small schema framework for recipes (YAML as data). Every key has a type, a
 * default, a range or an enum, and a description; the same schema validates a
 * recipe, fills in defaults and renders the reference documentation.
 *
 * Errors name the full key path, what was expected and what was given:
 * `recipe.train.optimizer.lr: Expected a number between 0 and 10 but received "fast" (string)`.
 */
import { describeValue, UsageError } from '../util/errors.js';

interface FieldBase {
  description: string;
  /** May be absent or null; resolves to null when absent and there is no default. */
  optional?: boolean;
}

export interface NumberField extends FieldBase {
  type: 'number';
  integer?: boolean;
  min?: number;
  max?: number;
  /** Exclusive lower bound (e.g. a learning rate must be > 0). */
  exclusiveMin?: boolean;
  default?: number;
}
export interface BooleanField extends FieldBase {
  type: 'boolean';
  default?: boolean;
}
export interface StringField extends FieldBase {
  type: 'string';
  /** Allowed values; any string when absent. */
  enum?: readonly string[];
  default?: string;
}
export interface ArrayField extends FieldBase {
  type: 'array';
  items: Field;
  minItems?: number;
  maxItems?: number;
  default?: unknown[];
}
export interface ObjectField extends FieldBase {
  type: 'object';
  fields: Record<string, Field>;
}
/** A mapping from integer or string keys to values of one type (e.g. `{3: 0.01}`). */
export interface MapField extends FieldBase {
  type: 'map';
  keys: 'integer' | 'string';
  /** Smallest allowed integer key. */
  minKey?: number;
  values: Field;
  default?: Record<string, unknown>;
}
/** Opaque value checked elsewhere (e.g. task options, checked by the task plugin). */
export interface AnyField extends FieldBase {
  type: 'any';
  default?: unknown;
}

export type Field = NumberField | BooleanField | StringField | ArrayField | ObjectField | MapField | AnyField;

type Options<F> = Omit<F, 'type' | 'description'>;

/** Builders, so schemas read as a table: `s.number('learning rate', { min: 0, default: 0.1 })`. */
export const s = {
  number: (description: string, o: Options<NumberField> = {}): NumberField => ({ type: 'number', description, ...o }),
  integer: (description: string, o: Options<NumberField> = {}): NumberField => ({
    type: 'number',
    integer: true,
    description,
    ...o,
  }),
  boolean: (description: string, o: Options<BooleanField> = {}): BooleanField => ({
    type: 'boolean',
    description,
    ...o,
  }),
  string: (description: string, o: Options<StringField> = {}): StringField => ({ type: 'string', description, ...o }),
  oneOf: (description: string, values: readonly string[], o: Options<StringField> = {}): StringField => ({
    type: 'string',
    enum: values,
    description,
    ...o,
  }),
  array: (description: string, items: Field, o: Omit<Options<ArrayField>, 'items'> = {}): ArrayField => ({
    type: 'array',
    items,
    description,
    ...o,
  }),
  object: (description: string, fields: Record<string, Field>, o: Omit<Options<ObjectField>, 'fields'> = {}) =>
    ({ type: 'object', fields, description, ...o }) as ObjectField,
  map: (
    description: string,
    keys: 'integer' | 'string',
    values: Field,
    o: Omit<Options<MapField>, 'keys' | 'values'> = {},
  ) => ({ type: 'map', keys, values, description, ...o }) as MapField,
  any: (description: string, o: Options<AnyField> = {}): AnyField => ({ type: 'any', description, ...o }),
};

/** A recipe value that does not fit the schema. The message starts with the full key path. */
export class SchemaError extends UsageError {
  override name = 'SchemaError';
  constructor(
    readonly keyPath: string,
    readonly detail: string,
  ) {
    super(`${keyPath}: ${detail}`);
  }
}

function fmt(n: number): string {
  return String(n);
}

/** The "Expected ..." phrase for a field, as used in error messages and docs. */
export function expectedText(field: Field): string {
  switch (field.type) {
    case 'number': {
      const what = field.integer ? 'an integer' : 'a number';
      const { min, max } = field;
      if (min !== undefined && max !== undefined) {
        return field.exclusiveMin
          ? `${what} greater than ${fmt(min)} and at most ${fmt(max)}`
          : `${what} between ${fmt(min)} and ${fmt(max)}`;
      }
      if (min !== undefined) return field.exclusiveMin ? `${what} greater than ${fmt(min)}` : `${what} >= ${fmt(min)}`;
      if (max !== undefined) return `${what} <= ${fmt(max)}`;
      return what;
    }
    case 'boolean':
      return 'true or false';
    case 'string':
      return field.enum ? `one of ${field.enum.map((v) => `"${v}"`).join(', ')}` : 'a string';
    case 'array': {
      const { minItems, maxItems } = field;
      let count = '';
      if (minItems !== undefined && minItems === maxItems) count = ` of exactly ${minItems}`;
      else if (minItems !== undefined && maxItems !== undefined) count = ` of ${minItems} to ${maxItems}`;
      else if (minItems !== undefined) count = ` of at least ${minItems}`;
      else if (maxItems !== undefined) count = ` of at most ${maxItems}`;
      return `a list${count} (items: ${expectedText(field.items)})`;
    }
    case 'object':
      return 'a mapping of keys to values';
    case 'map':
      return `a mapping from ${field.keys === 'integer' ? 'integer keys' : 'names'} to ${expectedText(field.values)}`;
    case 'any':
      return 'any value';
  }
}

function fail(path: string, field: Field, value: unknown): never {
  throw new SchemaError(path, `Expected ${expectedText(field)} but received ${describeValue(value)}`);
}

/** A mapping of keys to values (not null, not a list). */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Levenshtein distance, for "did you mean" hints. */
function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const current = row[j];
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
      previous = current;
    }
  }
  return row[b.length];
}

function unknownKey(path: string, key: string, known: string[]): never {
  const close = known
    .map((k) => ({ k, d: editDistance(k.toLowerCase(), key.toLowerCase()) }))
    .filter((c) => c.d <= Math.max(2, Math.floor(key.length / 3)))
    .sort((a, b) => a.d - b.d)[0];
  const hint = close ? `; did you mean "${close.k}"?` : '';
  throw new SchemaError(`${path}.${key}`, `Unknown key (known keys here: ${known.join(', ')})${hint}`);
}

/**
 * Checks `value` against `field` and returns it with defaults filled in.
 * `path` is the key path used in messages (`recipe`, `recipe.train`...).
 */
export function validate(field: Field, value: unknown, path: string): unknown {
  if (value === undefined || value === null) {
    if (field.type === 'object') return validateObject(field, {}, path);
    if ('default' in field && field.default !== undefined) return structuredClone(field.default);
    if (field.optional) return null;
    if (value === null) fail(path, field, value);
    throw new SchemaError(path, `Missing required key; expected ${expectedText(field)}`);
  }
  switch (field.type) {
    case 'number': {
      if (typeof value !== 'number' || !Number.isFinite(value)) fail(path, field, value);
      if (field.integer && !Number.isInteger(value)) fail(path, field, value);
      if (field.min !== undefined && (field.exclusiveMin ? value <= field.min : value < field.min))
        fail(path, field, value);
      if (field.max !== undefined && value > field.max) fail(path, field, value);
      return value;
    }
    case 'boolean':
      if (typeof value !== 'boolean') fail(path, field, value);
      return value;
    case 'string':
      if (typeof value !== 'string') fail(path, field, value);
      if (field.enum && !field.enum.includes(value)) fail(path, field, value);
      return value;
    case 'array': {
      if (!Array.isArray(value)) fail(path, field, value);
      if (field.minItems !== undefined && value.length < field.minItems) fail(path, field, value);
      if (field.maxItems !== undefined && value.length > field.maxItems) fail(path, field, value);
      return value.map((item, i) => validate(field.items, item, `${path}[${i}]`));
    }
    case 'object':
      if (!isPlainObject(value)) fail(path, field, value);
      return validateObject(field, value, path);
    case 'map': {
      if (!isPlainObject(value)) fail(path, field, value);
      const out: Record<string, unknown> = {};
      for (const [key, item] of Object.entries(value)) {
        if (field.keys === 'integer') {
          const n = Number(key);
          if (!/^-?\d+$/.test(key.trim()) || (field.minKey !== undefined && n < field.minKey)) {
            const range = field.minKey !== undefined ? ` >= ${field.minKey}` : '';
            throw new SchemaError(`${path}.${key}`, `Expected an integer key${range} but received "${key}" (string)`);
          }
          out[String(n)] = validate(field.values, item, `${path}.${n}`);
        } else {
          out[key] = validate(field.values, item, `${path}.${key}`);
        }
      }
      return out;
    }
    case 'any':
      return structuredClone(value);
  }
}

function validateObject(field: ObjectField, value: Record<string, unknown>, path: string): Record<string, unknown> {
  const known = Object.keys(field.fields);
  for (const key of Object.keys(value)) {
    if (!(key in field.fields)) unknownKey(path, key, known);
  }
  const out: Record<string, unknown> = {};
  for (const [key, child] of Object.entries(field.fields)) {
    out[key] = validate(child, value[key], `${path}.${key}`);
  }
  return out;
}

/** The resolved defaults of a schema (what an empty recipe resolves to, where every key has a default). */
export function defaultsOf(field: ObjectField): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, child] of Object.entries(field.fields)) {
    if (child.type === 'object') out[key] = defaultsOf(child);
    else if ('default' in child && child.default !== undefined) out[key] = structuredClone(child.default);
    else out[key] = null;
  }
  return out;
}

/** Looks up the field at a dotted key path (`train.optimizer.lr`), or undefined. */
export function fieldAt(root: ObjectField, keyPath: string): Field | undefined {
  let field: Field | undefined = root;
  for (const part of keyPath.split('.')) {
    if (field?.type !== 'object') return undefined;
    field = field.fields[part];
  }
  return field;
}
