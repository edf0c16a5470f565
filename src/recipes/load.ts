/**
 * Reading recipes: YAML files with `extends:` (a relative path or a list of
 * them, deep-merged in order, then the file's own keys on top; cycles are an
 * error), checked against a schema. Every file read is a regular file within
 * RECIPE_LIMITS, and `extends` stays inside the recipe's folder tree or the
 * shipped recipes.
 */
import { existsSync, realpathSync } from 'node:fs';
import path from 'node:path';
import YAML, { Lexer } from 'yaml';
import { InputError, UsageError } from '../util/errors.js';
import { readRegularTextFile } from '../util/files.js';
import { packageRoot } from '../util/package-root.js';
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

/** Limits on a recipe file, each named in the error that enforces it. */
export const RECIPE_LIMITS = {
  /** Largest recipe file read (the shipped ones are under 4 KiB). */
  maxBytes: 1024 * 1024,
  /** Deepest nesting of mappings and lists. */
  maxDepth: 64,
  /** Most YAML tokens (keys, values, list items, punctuation) in one file. */
  maxTokens: 100_000,
  /** Longest chain of `extends`. */
  maxExtendsDepth: 16,
} as const;

/** Where shipped recipes live (`recipes/` of the package); `extends` may always name files there. */
export function shippedRecipesDir(): string {
  return path.join(packageRoot(), 'recipes');
}

/**
 * Checks nesting depth and size of YAML text before parsing it: the parser
 * recurses per level (a few thousand `[` exhaust the stack, 100,000 exhaust
 * memory), and a long list takes seconds per MB. The lexer is iterative.
 */
function checkYamlShape(file: string, text: string): void {
  let flow = 0;
  let deepest = 0;
  let tokens = 0;
  const indents: number[] = [];
  let lineStart = true;
  let compact = 0; // "- - x": list items opened on the same line
  for (const token of new Lexer().lex(text)) {
    const first = token[0];
    if (first === '\n' || first === '\r') {
      lineStart = true;
      compact = 0;
      continue;
    }
    if (lineStart && flow === 0) {
      // Block nesting: the stack of indentations open at this line.
      const indent = first === ' ' ? token.length : 0;
      if (!(first === ' ' && token.length === 0)) {
        while (indents.length > 0 && indents[indents.length - 1] >= indent) indents.pop();
        indents.push(indent);
      }
    }
    lineStart = false;
    if (first === ' ' || first === '\t') continue;
    if (++tokens > RECIPE_LIMITS.maxTokens) {
      throw new RecipeError(file, `has more than ${RECIPE_LIMITS.maxTokens} YAML tokens (the limit for a recipe)`);
    }
    if (token === '[' || token === '{') flow++;
    else if (token === ']' || token === '}') flow = Math.max(0, flow - 1);
    else if ((token === '-' || token === '?') && flow === 0) compact++;
    const depth = flow + indents.length + compact;
    if (depth > deepest) {
      deepest = depth;
      if (deepest > RECIPE_LIMITS.maxDepth) {
        throw new RecipeError(
          file,
          `nests mappings and lists more than ${RECIPE_LIMITS.maxDepth} levels deep (the limit for a recipe)`,
        );
      }
    }
  }
}

/**
 * Reads and parses one recipe file. Only a regular file up to
 * RECIPE_LIMITS.maxBytes is opened; errors name the file and never quote its
 * content (an `extends` may point at a file that is not a recipe).
 */
function parseYamlFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readRegularTextFile(file, { maxBytes: RECIPE_LIMITS.maxBytes, what: 'recipe' });
  } catch (e) {
    if (e instanceof InputError) throw new RecipeError(file, e.message.slice(file.length + 2));
    throw e;
  }
  checkYamlShape(file, text);
  let parsed: unknown;
  try {
    parsed = YAML.parse(text);
  } catch (e) {
    const where = (e as { linePos?: Array<{ line: number; col: number }> }).linePos?.[0];
    const code = (e as { code?: string }).code;
    throw new RecipeError(
      file,
      `not valid YAML${where ? ` at line ${where.line}, column ${where.col}` : ''}${code ? ` (${code})` : ''}`,
    );
  }
  if (parsed === null || parsed === undefined) return {};
  if (!isPlainObject(parsed))
    throw new RecipeError(file, 'a recipe must be a mapping of keys to values at the top level');
  return parsed;
}

function inside(file: string, folder: string): boolean {
  const relative = path.relative(folder, file);
  return relative === '' || (!relative.startsWith(`..${path.sep}`) && relative !== '..' && !path.isAbsolute(relative));
}

function realOrSelf(file: string): string {
  try {
    return realpathSync(file);
  } catch {
    return file;
  }
}

/**
 * Resolves one `extends` entry of `file`: a relative path, resolved against the
 * file's folder, that must land (symlinks followed) inside `allowedRoot` (the
 * folder of the recipe first named) or the shipped recipes folder. A bare file
 * name that is not beside the recipe names the shipped recipe of that name.
 */
function resolveExtends(file: string, parent: string, allowedRoot: string): string {
  if (path.isAbsolute(parent)) {
    throw new RecipeError(
      file,
      `extends: "${parent}" is an absolute path; use a path relative to the recipe (inside ${allowedRoot}) or a shipped recipe's file name (e.g. finetune-few-labels.yaml)`,
      'extends',
    );
  }
  const shipped = shippedRecipesDir();
  let target = path.resolve(path.dirname(file), parent);
  // A bare file name with no such file beside the recipe names a shipped recipe (`extends: finetune-few-labels.yaml`).
  if (
    !parent.includes('/') &&
    !parent.includes('\\') &&
    !existsSync(target) &&
    existsSync(path.join(shipped, parent))
  ) {
    target = path.join(shipped, parent);
  }
  const real = realOrSelf(target);
  const allowed = [allowedRoot, shipped].some((root) => inside(target, root) && inside(real, realOrSelf(root)));
  if (!allowed) {
    throw new RecipeError(
      file,
      `extends: "${parent}" is outside ${allowedRoot} and the shipped recipes (${shipped}); refusing to read it`,
      'extends',
    );
  }
  if (!/\.ya?ml$/.test(target)) {
    throw new RecipeError(file, `extends: "${parent}" is not a .yaml file`, 'extends');
  }
  return target;
}

/**
 * Reads a recipe file and everything it extends, merged (not yet validated).
 * `extends` paths are relative to the file that names them and must stay inside
 * the first recipe's folder tree or the shipped recipes (see {@link resolveExtends}).
 */
export function readRecipeTree(file: string, chain: string[] = []): Record<string, unknown> {
  const absolute = path.resolve(file);
  if (chain.includes(absolute)) {
    const cycle = [...chain.slice(chain.indexOf(absolute)), absolute].map((f) => path.relative(process.cwd(), f));
    throw new RecipeError(file, `extends forms a cycle: ${cycle.join(' -> ')}`, 'extends');
  }
  if (chain.length >= RECIPE_LIMITS.maxExtendsDepth) {
    throw new RecipeError(
      chain[0],
      `extends chains more than ${RECIPE_LIMITS.maxExtendsDepth} files deep (the limit for a recipe)`,
      'extends',
    );
  }
  const own = parseYamlFile(absolute);
  const parents = own.extends;
  delete own.extends;
  if (parents === undefined || parents === null) return own;
  const list = Array.isArray(parents) ? parents : [parents];
  const allowedRoot = path.dirname(chain[0] ?? absolute);
  let merged: unknown = {};
  for (const parent of list) {
    if (typeof parent !== 'string' || parent.length === 0) {
      throw new RecipeError(
        file,
        `extends: Expected a relative file path or a list of them but received ${JSON.stringify(parents)}`,
        'extends',
      );
    }
    const target = resolveExtends(absolute, parent, allowedRoot);
    merged = deepMerge(merged, readRecipeTree(target, [...chain, absolute]));
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
