/**
 * Vitest global setup: every temporary folder of a test run goes under one
 * folder that is removed when the run ends. Tests and the CLI processes they
 * start create theirs with os.tmpdir(), which follows TMPDIR, so nothing is left
 * in the system's temporary folder (a suite run used to leave ~1 GB there).
 * SELFSUP_KEEP_TEST_TMP=1 keeps the folder and prints where it is.
 * The folder can be traversed (not listed) by every user, mode 0711: run as
 * root, the permission-denied scan test drops to the uid of "nobody" and must
 * reach its own folder inside.
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export default function setup(): () => void {
  const root = mkdtempSync(path.join(os.tmpdir(), 'selfsup-test-run-'));
  chmodSync(root, 0o711);
  const previous = process.env.TMPDIR;
  process.env.TMPDIR = root;
  return () => {
    if (previous === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = previous;
    if (process.env.SELFSUP_KEEP_TEST_TMP === '1') console.log(`test temporary files kept in ${root}`);
    else rmSync(root, { recursive: true, force: true });
  };
}
