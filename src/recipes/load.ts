/**
 * Reading recipes: YAML files with `extends:` (a relative path or a list of
 * them, deep-merged in order, then the file's own keys on top; cycles are an
 * error), checked against a schema.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { InputError, UsageError } from '../util/errors.js';
import { isPlainObject, type ObjectField, SchemaError, validate } from './schema.js';

/** A recipe file that cannot be read, parsed or validated. The message names the file (and the key). */
export class RecipeError extends UsageError {
  override name = 'RecipeError';
  constructor(
    readonly file: string,
    message: string,
    readonly keyPath?: string,
  ) {
    super(`${file}: ${message}`);
  }
}

/**
 * Deep merge: mappings merge key by key; lists and scalars from `over` replace
 * those of `base`. Neither input is modified.
 */
export function deepMerge(base: unknown, over: unknown): unknown {
  if (isPlainObject(base) && isPlainObject(over)) {
    const out: Record<string, unknown> = { ...base };
    for (const [key, value] of Object.entries(over)) {
      out[key] = key in base ? deepMerge(base[key], value) : structuredClone(value);
    }
    return out;
  }
  return structuredClone(over);
}

function parseYamlFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new RecipeError(
      file,
      `cannot read the recipe (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
    );
  }
  let parsed: unknown;
  try {
    parsed = YAML.parse(text);
  } catch (e) {
    throw new RecipeError(file, `not valid YAML: ${(e as Error).message.split('\n')[0]}`);
  }
  if (parsed === null || parsed === undefined) return {};
  if (!isPlainObject(parsed))
    throw new RecipeError(file, 'a recipe must be a mapping of keys to values at the top level');
  return parsed;
}

/**
 * Reads a recipe file and everything it extends, merged (not yet validated).
 * `extends` paths are relative to the file that names them.
 */
export function readRecipeTree(file: string, chain: string[] = []): Record<string, unknown> {
  const absolute = path.resolve(file);
  if (chain.includes(absolute)) {
    const cycle = [...chain.slice(chain.indexOf(absolute)), absolute].map((f) => path.relative(process.cwd(), f));
    throw new RecipeError(file, `extends forms a cycle: ${cycle.join(' -> ')}`, 'extends');
  }
  const own = parseYamlFile(absolute);
  const parents = own.extends;
  delete own.extends;
  if (parents === undefined || parents === null) return own;
  const list = Array.isArray(parents) ? parents : [parents];
  let merged: unknown = {};
  for (const parent of list) {
    if (typeof parent !== 'string' || parent.length === 0) {
      throw new RecipeError(
        file,
        `extends: Expected a relative file path or a list of them but received ${JSON.stringify(parents)}`,
        'extends',
      );
    }
    merged = deepMerge(merged, readRecipeTree(path.resolve(path.dirname(absolute), parent), [...chain, absolute]));
  }
  return deepMerge(merged, own) as Record<string, unknown>;
}

/** Validates merged recipe data against a schema; errors are prefixed with `file` when given. */
export function validateRecipe<T>(schema: ObjectField, data: unknown, file?: string): T {
  try {
    return validate(schema, data, 'recipe') as T;
  } catch (e) {
    if (e instanceof SchemaError && file) throw new RecipeError(file, e.message, e.keyPath);
    throw e;
  }
}

/**
 * Reads, merges (`extends`) and validates a recipe file. `check`, when given,
 * sees the merged data first (e.g. to refuse keys of an old dialect); its
 * SchemaErrors are prefixed with the file like the schema's.
 */
export function loadRecipeFile<T>(file: string, schema: ObjectField, check?: (data: unknown) => void): T {
  if (!file.endsWith('.yaml') && !file.endsWith('.yml')) {
    throw new InputError(file, 'a recipe is a .yaml file');
  }
  const data = readRecipeTree(file);
  try {
    check?.(data);
  } catch (e) {
    if (e instanceof SchemaError) throw new RecipeError(file, e.message, e.keyPath);
    throw e;
  }
  return validateRecipe<T>(schema, data, file);
}

/** YAML text of a resolved recipe, with a header comment. */
export function stringifyRecipe(recipe: unknown, header?: string): string {
  const body = YAML.stringify(recipe, { lineWidth: 0 });
  return header
    ? `${header
        .split('\n')
        .map((l) => `# ${l}`)
        .join('\n')}\n${body}`
    : body;
}
