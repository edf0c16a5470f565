/**
 * The layering of docs/DESIGN (imports point down the layers; no cycles
 * between folders), checked by reading every import of src/ and pretext-tasks/.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '..');

/** Floors from the top: a folder may import its own floor's neighbours (without cycles) and anything below. */
const FLOORS: string[][] = [
  ['cli'],
  ['demo'],
  ['finetune', 'train', 'select'],
  ['recipes', 'embed', 'probes'],
  ['pretext-tasks', 'export'],
  ['data', 'backbones', 'report'],
  ['util', 'engine'],
];
const floorOf = new Map(FLOORS.flatMap((names, i) => names.map((name) => [name, FLOORS.length - i] as const)));

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(full);
    return entry.name.endsWith('.ts') ? [full] : [];
  });
}

/** The folder (layer) of a file: `pretext-tasks`, or the first folder under src/; undefined for src/index.ts and src/version.ts. */
function folderOf(file: string): string | undefined {
  const relative = path.relative(ROOT, file).split(path.sep);
  if (relative[0] === 'pretext-tasks') return 'pretext-tasks';
  return relative[0] === 'src' && relative.length > 2 ? relative[1] : undefined;
}

/** Every relative import (static, `export ... from`, dynamic) of a file, resolved to a .ts path. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const found: string[] = [];
  for (const match of text.matchAll(/(?:from\s+|import\s*\(\s*|import\s+)'(\.{1,2}\/[^']+)'/g)) {
    found.push(path.resolve(path.dirname(file), match[1]).replace(/\.js$/, '.ts'));
  }
  return found;
}

interface Edge {
  from: string;
  to: string;
  file: string;
  target: string;
}

function folderEdges(): Edge[] {
  const files = [...sourceFiles(path.join(ROOT, 'src')), ...sourceFiles(path.join(ROOT, 'pretext-tasks'))];
  const edges: Edge[] = [];
  for (const file of files) {
    const from = folderOf(file);
    if (!from) continue;
    for (const target of importsOf(file)) {
      const to = folderOf(target);
      if (to && to !== from)
        edges.push({ from, to, file: path.relative(ROOT, file), target: path.relative(ROOT, target) });
    }
  }
  return edges;
}

/** Every cycle a depth-first walk of the folder graph meets, as `a -> b -> a`. */
function cyclesOf(edges: ReadonlyArray<Pick<Edge, 'from' | 'to'>>): string[] {
  const next = new Map<string, Set<string>>();
  for (const e of edges) {
    if (!next.has(e.from)) next.set(e.from, new Set());
    next.get(e.from)?.add(e.to);
  }
  const cycles: string[] = [];
  const state = new Map<string, 'open' | 'done'>();
  const visit = (folder: string, trail: string[]): void => {
    if (state.get(folder) === 'done') return;
    if (state.get(folder) === 'open') {
      cycles.push([...trail.slice(trail.indexOf(folder)), folder].join(' -> '));
      return;
    }
    state.set(folder, 'open');
    for (const to of next.get(folder) ?? []) visit(to, [...trail, folder]);
    state.set(folder, 'done');
  };
  for (const folder of next.keys()) visit(folder, []);
  return cycles;
}

describe('layering (DESIGN.md: imports point down the layers)', () => {
  const edges = folderEdges();

  it('knows the floor of every folder', () => {
    const folders = new Set(edges.flatMap((e) => [e.from, e.to]));
    expect([...folders].filter((f) => !floorOf.has(f))).toEqual([]);
    // The parser finds the imports it should (a check that cannot pass on an empty list).
    expect(edges.some((e) => e.from === 'cli' && e.to === 'finetune')).toBe(true);
  });

  it('has no import from a lower floor to a higher one', () => {
    const upward = edges
      .filter((e) => (floorOf.get(e.to) ?? 0) > (floorOf.get(e.from) ?? 0))
      .map((e) => `${e.file} -> ${e.target}`);
    expect(upward).toEqual([]);
  });

  it('has no import cycle between folders', () => {
    // The walk finds a cycle among neighbours of one floor and none in a chain (a check that cannot pass vacuously).
    expect(
      cyclesOf([
        { from: 'finetune', to: 'train' },
        { from: 'train', to: 'select' },
        { from: 'select', to: 'finetune' },
      ]),
    ).toEqual(['finetune -> train -> select -> finetune']);
    expect(
      cyclesOf([
        { from: 'cli', to: 'finetune' },
        { from: 'finetune', to: 'train' },
        { from: 'cli', to: 'train' },
      ]),
    ).toEqual([]);
    expect(cyclesOf(edges)).toEqual([]);
  });
});
