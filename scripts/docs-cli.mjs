/**
 * Regenerates the command reference part of docs/cli.md from the commands'
 * definitions (their --help text). Run after changing any command:
 *
 *   npm run build && node scripts/docs-cli.mjs
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const { updateCliReference } = await import(path.join(root, 'dist/src/cli/reference.js'));
const file = path.join(root, 'docs/cli.md');
writeFileSync(file, updateCliReference(readFileSync(file, 'utf8')));
console.log(`updated ${file}`);
