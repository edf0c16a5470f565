import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { renderRecipesReference, renderSchemaTables } from '../../src/recipes/reference.js';
import { s } from '../../src/recipes/schema.js';

describe('docs/recipes.md', () => {
  it('is the output of renderRecipesReference() (run `npm run docs:recipes` after changing a schema)', () => {
    const committed = readFileSync('docs/recipes.md', 'utf8');
    expect(committed === renderRecipesReference(), 'docs/recipes.md is stale: run `npm run docs:recipes`').toBe(true);
  });

  it('renders every key with its type, default and description', () => {
    const text = renderSchemaTables(
      s.object('root', {
        lr: s.number('Learning rate.', { min: 0, max: 10, exclusiveMin: true, default: 0.1 }),
        nested: s.object('A section.', { name: s.oneOf('Which.', ['a', 'b']) }),
      }),
    );
    expect(text).toContain('| `lr` | a number greater than 0 and at most 10 | `0.1` | Learning rate. |');
    expect(text).toContain('### `nested`');
    expect(text).toContain('| `nested.name` | one of "a", "b" | **required** | Which. |');
  });
});
