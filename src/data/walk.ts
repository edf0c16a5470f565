/**
 * Streaming recursive directory walk. Follows symlinks, but each real directory
 * (device + inode) is entered once, so symlink loops end. Entries are sorted per
 * directory, so the order is stable across runs.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { InputError } from '../util/errors.js';

export interface WalkFile {
  kind: 'file';
  path: string;
  bytes: number;
  mtimeMs: number;
}

export interface WalkProblem {
  /** A file or folder that could not be listed or stat'ed; `reason` says why. */
  kind: 'problem';
  path: string;
  reason: string;
}

export interface WalkSkip {
  /** Something deliberately not scanned (symlink loop, special file, hidden). */
  kind: 'skip';
  path: string;
  reason: string;
}

export type WalkEntry = WalkFile | WalkProblem | WalkSkip;

export interface WalkOptions {
  /** Include names starting with "." (default false: skipped and counted). */
  includeHidden?: boolean;
}

function errorReason(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'EACCES' || code === 'EPERM') return 'unreadable: permission denied';
  if (code === 'ENOENT') return 'unreadable: broken symlink or removed during the scan';
  if (code === 'ELOOP') return 'unreadable: too many levels of symbolic links';
  return `unreadable: ${code ?? (e as Error).message}`;
}

/** Yields every file under `root` (depth first, sorted by name), plus problems and skips. */
export async function* walkFiles(root: string, options: WalkOptions = {}): AsyncGenerator<WalkEntry> {
  const seen = new Set<string>();
  let rootStat: import('node:fs').Stats;
  try {
    rootStat = await fsp.stat(root);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      // stat follows symlinks: only a link that exists itself is a broken symlink.
      const isLink = await fsp.lstat(root).then(
        (s) => s.isSymbolicLink(),
        () => false,
      );
      throw new InputError(root, isLink ? 'cannot open folder (a broken symlink)' : 'does not exist');
    }
    throw new InputError(root, `cannot open folder (${errorReason(e)})`);
  }
  if (!rootStat.isDirectory()) throw new InputError(root, 'not a folder');
  seen.add(`${rootStat.dev}:${rootStat.ino}`);
  // An explicit stack instead of recursion: memory is one sorted name list per open level.
  const stack: string[][] = [[root]];
  const prefixes: string[] = [''];
  while (stack.length > 0) {
    const level = stack[stack.length - 1];
    const next = level.pop();
    if (next === undefined) {
      stack.pop();
      prefixes.pop();
      continue;
    }
    const full = stack.length === 1 ? next : path.join(prefixes[prefixes.length - 1], next);
    if (stack.length > 1) {
      const name = path.basename(full);
      if (!options.includeHidden && name.startsWith('.')) {
        yield { kind: 'skip', path: full, reason: 'hidden' };
        continue;
      }
      let stat: import('node:fs').Stats;
      try {
        stat = await fsp.stat(full);
      } catch (e) {
        yield { kind: 'problem', path: full, reason: errorReason(e) };
        continue;
      }
      if (stat.isFile()) {
        yield { kind: 'file', path: full, bytes: stat.size, mtimeMs: stat.mtimeMs };
        continue;
      }
      if (!stat.isDirectory()) {
        yield { kind: 'skip', path: full, reason: 'not a regular file (device, socket or pipe)' };
        continue;
      }
      const key = `${stat.dev}:${stat.ino}`;
      if (seen.has(key)) {
        yield { kind: 'skip', path: full, reason: 'folder already scanned (symlink loop or duplicate link)' };
        continue;
      }
      seen.add(key);
    }
    let names: string[];
    try {
      names = await fsp.readdir(full);
    } catch (e) {
      yield { kind: 'problem', path: full, reason: errorReason(e) };
      continue;
    }
    // Reverse-sorted so pop() visits names in ascending order.
    names.sort((a, b) => (a < b ? 1 : a > b ? -1 : 0));
    stack.push(names);
    prefixes.push(full);
  }
}
