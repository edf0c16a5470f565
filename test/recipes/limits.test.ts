/** Recipe files are bounded: size, nesting, token count, extends depth; extends stays in its folder tree. */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { RECIPE_LIMITS, RecipeError, readRecipeTree, shippedRecipesDir } from '../../src/recipes/load.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'selfsup-recipe-limits-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function write(name: string, text: string): string {
  const file = path.join(dir, name);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, text);
  return file;
}

function errorOf(fn: () => unknown): RecipeError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(RecipeError);
    return e as RecipeError;
  }
  throw new Error('expected an error');
}

describe('recipe limits', () => {
  it('refuses extends: /dev/zero (absolute) and a relative FIFO without reading either', () => {
    const zero = write('zero.yaml', 'extends: /dev/zero\n');
    expect(errorOf(() => readRecipeTree(zero)).message).toBe(
      `${zero}: extends: "/dev/zero" is an absolute path; use a path relative to the recipe (inside ${dir}) or a shipped recipe's file name (e.g. finetune-few-labels.yaml)`,
    );
    execFileSync('mkfifo', [path.join(dir, 'pipe.yaml')]);
    const fifo = write('fifo.yaml', 'extends: pipe.yaml\n');
    expect(errorOf(() => readRecipeTree(fifo)).message).toBe(
      `${path.join(dir, 'pipe.yaml')}: cannot read the recipe: not a regular file (a FIFO (named pipe)); refusing to open it`,
    );
  });

  it('a bare file name not beside the recipe names the shipped recipe; one beside it wins', () => {
    const user = write('elsewhere/mine.yaml', 'extends: finetune-fixmatch-long.yaml\nseed: 5\n');
    const tree = readRecipeTree(user) as {
      fixmatch: { enabled: boolean };
      stages: Array<{ epochs: number }>;
      seed: number;
    };
    expect(tree.fixmatch.enabled).toBe(true);
    expect(tree.stages[0].epochs).toBe(75);
    expect(tree.seed).toBe(5);
    write('elsewhere/finetune-fixmatch-long.yaml', 'seed: 9\nname: local\n');
    expect(readRecipeTree(user)).toEqual({ seed: 5, name: 'local' });
    // Only a bare name falls back: a path with a folder is resolved as written.
    const nested = write('elsewhere/nested.yaml', 'extends: sub/finetune-few-labels.yaml\n');
    expect(errorOf(() => readRecipeTree(nested)).message).toContain('does not exist');
  });

  it('refuses extends outside the folder tree, and never quotes the target file', () => {
    const outside = mkdtempSync(path.join(os.tmpdir(), 'selfsup-recipe-outside-'));
    try {
      writeFileSync(path.join(outside, 'secret.yaml'), 'root:x:0:0:SECRET-FIRST-LINE\n');
      const sub = write(
        'tree/leaf.yaml',
        `extends: ${path.relative(path.join(dir, 'tree'), path.join(outside, 'secret.yaml'))}\n`,
      );
      const error = errorOf(() => readRecipeTree(sub));
      expect(error.message).toMatch(/is outside .* and the shipped recipes .*; refusing to read it$/);
      expect(error.message).not.toContain('SECRET');
      // A symlink inside the tree that leads outside is refused too.
      symlinkSync(path.join(outside, 'secret.yaml'), path.join(dir, 'tree', 'link.yaml'));
      const linked = write('tree/linked.yaml', 'extends: link.yaml\n');
      expect(errorOf(() => readRecipeTree(linked)).message).toContain('"link.yaml" is outside');
      // A file in the tree that is not YAML: the error gives the line and column, not the text.
      write('tree/notes.yaml', 'key: [SECRET-FIRST-LINE\n');
      const bad = write('tree/bad.yaml', 'extends: notes.yaml\n');
      const badError = errorOf(() => readRecipeTree(bad));
      expect(badError.message).toMatch(/notes\.yaml: not valid YAML at line \d+, column \d+/);
      expect(badError.message).not.toContain('SECRET');
    } finally {
      rmSync(outside, { recursive: true, force: true });
    }
  });

  it('allows the recipe folder tree and the shipped recipes', () => {
    write('parts/optim.yaml', 'train: {optimizer: {name: sgd}}\n');
    const own = write('own.yaml', 'extends: parts/optim.yaml\nseed: 3\n');
    expect(readRecipeTree(own)).toEqual({ train: { optimizer: { name: 'sgd' } }, seed: 3 });
    const shipped = path.relative(dir, path.join(shippedRecipesDir(), 'base', 'optim-sgd.yaml'));
    const user = write('user.yaml', `extends: ${shipped}\nseed: 4\n`);
    expect(readRecipeTree(user)).toMatchObject({ seed: 4, train: { optimizer: expect.any(Object) } });
  });

  it('refuses a recipe over the size limit (a huge YAML list) before parsing it', () => {
    const huge = write('huge.yaml', `values:\n${'  - 1234567\n'.repeat(120_000)}`);
    expect(errorOf(() => readRecipeTree(huge)).message).toBe(
      `${huge}: the recipe is ${12 * 120_000 + 8} bytes, over the limit of ${RECIPE_LIMITS.maxBytes} bytes (1 MiB)`,
    );
    const many = write('many.yaml', `v: [${'1,'.repeat(RECIPE_LIMITS.maxTokens)}1]\n`);
    expect(errorOf(() => readRecipeTree(many)).message).toBe(
      `${many}: has more than ${RECIPE_LIMITS.maxTokens} YAML tokens (the limit for a recipe)`,
    );
  });

  it('refuses deep nesting before the parser recurses', () => {
    const message = (file: string) =>
      `${file}: nests mappings and lists more than ${RECIPE_LIMITS.maxDepth} levels deep (the limit for a recipe)`;
    const flow = write('flow.yaml', `a: ${'['.repeat(5000)}${']'.repeat(5000)}\n`);
    expect(errorOf(() => readRecipeTree(flow)).message).toBe(message(flow));
    const block = write('block.yaml', Array.from({ length: 100 }, (_, i) => `${' '.repeat(i)}k:`).join('\n'));
    expect(errorOf(() => readRecipeTree(block)).message).toBe(message(block));
    const compact = write('compact.yaml', `a:\n  ${'- '.repeat(100)}1\n`);
    expect(errorOf(() => readRecipeTree(compact)).message).toBe(message(compact));
  });

  it('limits the extends chain', () => {
    const n = RECIPE_LIMITS.maxExtendsDepth + 2;
    for (let i = 0; i < n; i++) write(`chain/c${i}.yaml`, i + 1 < n ? `extends: c${i + 1}.yaml\n` : 'seed: 1\n');
    const first = path.join(dir, 'chain', 'c0.yaml');
    expect(errorOf(() => readRecipeTree(first)).message).toBe(
      `${first}: extends chains more than ${RECIPE_LIMITS.maxExtendsDepth} files deep (the limit for a recipe)`,
    );
  });
});
