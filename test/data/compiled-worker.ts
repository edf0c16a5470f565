/**
 * Worker threads need JavaScript, but the tests run the TypeScript sources. This
 * transpiles the worker and what it imports (src/data, src/util) into a temporary
 * folder (TypeScript's own transpiler, no bundling) and returns the worker's URL.
 */
import { mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import ts from 'typescript';
import { tempDir } from './fixtures.js';

const repo = path.resolve(import.meta.dirname, '../..');

function transpileFolder(from: string, to: string): void {
  mkdirSync(to, { recursive: true });
  for (const entry of readdirSync(from, { withFileTypes: true })) {
    const source = path.join(from, entry.name);
    if (entry.isDirectory()) transpileFolder(source, path.join(to, entry.name));
    else if (entry.name.endsWith('.ts')) {
      const output = ts.transpileModule(readFileSync(source, 'utf8'), {
        compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022 },
        fileName: source,
      });
      writeFileSync(path.join(to, entry.name.replace(/\.ts$/, '.js')), output.outputText);
    }
  }
}

export function compiledWorkerUrl(): URL {
  const out = tempDir('selfsup-worker-');
  transpileFolder(path.join(repo, 'src/data'), path.join(out, 'src/data'));
  transpileFolder(path.join(repo, 'src/util'), path.join(out, 'src/util'));
  writeFileSync(path.join(out, 'package.json'), '{"type": "module"}');
  symlinkSync(path.join(repo, 'node_modules'), path.join(out, 'node_modules'));
  return pathToFileURL(path.join(out, 'src/data/augment-worker.js'));
}
