#!/usr/bin/env node
/**
 * Regenerates docs/recipes.md from the recipe schemas (run `npm run docs:recipes`,
 * which builds first). test/recipes/reference.test.ts fails when the committed file is stale.
 */
import { writeFileSync } from 'node:fs';
import { renderRecipesReference } from '../dist/src/recipes/reference.js';

const target = new URL('../docs/recipes.md', import.meta.url);
writeFileSync(target, renderRecipesReference());
process.stdout.write(`wrote ${target.pathname}\n`);
