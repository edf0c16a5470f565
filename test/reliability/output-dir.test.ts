/**
 * Output folders (src/util/output-dir.ts): a command writes only into a new or empty
 * --out, or (with --overwrite) into its own earlier output, replacing only what it
 * wrote; never into what it reads. Each case here deleted or overwrote files before.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { main } from '../../src/cli/main.js';
import { initEngine } from '../../src/engine/backend.js';
import { checkOutputDir, OUTPUT_MARKER, readOutputMarker, writeOutputDir } from '../../src/util/output-dir.js';
import { writeClassFolders, writeTinyBackboneExport } from '../cli/fixtures.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'selfsup-output-dir-'));
const labeled = path.join(work, 'labeled');
const backbone = path.join(work, 'backbone');
const recipe = path.join(work, 'tiny.yaml');
afterAll(() => rmSync(work, { recursive: true, force: true }));
beforeAll(async () => {
  expect(initEngine().backend).toBe('tensorflow');
  await writeClassFolders(labeled, 6, 1);
  await writeTinyBackboneExport(backbone, 16);
  writeFileSync(
    recipe,
    'name: tiny\nstages:\n  - epochs: 1\n    trainable: [head]\ntrain:\n  batchSize: 4\neval:\n  holdout: 0.25\nlabelProblems:\n  k: 2\n  folds: 2\n',
  );
});

async function run(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout += chunk.toString();
    return true;
  });
  vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr += chunk.toString();
    return true;
  });
  try {
    return { code: await main([...argv, '--quiet']), stdout, stderr };
  } finally {
    vi.restoreAllMocks();
  }
}

/** A folder holding a user's file. */
function userFolder(name: string): string {
  const dir = path.join(work, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'notes.txt'), 'mine');
  return dir;
}

/** Every file under `dir` with its bytes, to compare before and after. */
function snapshot(dir: string): Record<string, string> {
  const files: Record<string, string> = {};
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const full = path.join(d, e.name);
      if (e.isDirectory()) walk(full);
      else files[path.relative(dir, full)] = readFileSync(full).toString('base64');
    }
  };
  walk(dir);
  return files;
}

describe('writeOutputDir', () => {
  it('keeps files it did not write and replaces only the ones its marker lists', async () => {
    const out = path.join(work, 'unit');
    await writeOutputDir(out, { kind: 'test' }, async (dir) => {
      writeFileSync(path.join(dir, 'a.txt'), 'first');
      writeFileSync(path.join(dir, 'old.txt'), 'first');
    });
    expect(readOutputMarker(out)).toMatchObject({
      format: 'selfsup-output',
      kind: 'test',
      files: ['a.txt', 'old.txt'],
    });
    writeFileSync(path.join(out, 'notes.txt'), 'mine');
    expect(() => checkOutputDir(out, { kind: 'test' })).toThrow(
      `--out ${out} already holds a selfsup test output; pass --overwrite to replace it (only the files selfsup wrote there are replaced) or another folder`,
    );
    expect(() => checkOutputDir(out, { kind: 'other', overwrite: true })).toThrow(
      `--out ${out} holds a selfsup test output, not a other output; pass another folder`,
    );
    await writeOutputDir(out, { kind: 'test', overwrite: true }, async (dir) => {
      writeFileSync(path.join(dir, 'a.txt'), 'second');
    });
    expect(readdirSync(out).sort()).toEqual([OUTPUT_MARKER, 'a.txt', 'notes.txt']);
    expect(readFileSync(path.join(out, 'a.txt'), 'utf8')).toBe('second');
    expect(readFileSync(path.join(out, 'notes.txt'), 'utf8')).toBe('mine');
  });

  it('refuses a new output named like a file selfsup did not write', async () => {
    const out = path.join(work, 'unit-collide');
    await writeOutputDir(out, { kind: 'test' }, async (dir) => writeFileSync(path.join(dir, 'a.txt'), '1'));
    writeFileSync(path.join(out, 'b.txt'), 'mine');
    await expect(
      writeOutputDir(out, { kind: 'test', overwrite: true }, async (dir) =>
        writeFileSync(path.join(dir, 'b.txt'), '2'),
      ),
    ).rejects.toThrow(`${path.join(out, 'b.txt')} was not written by selfsup`);
    expect(readFileSync(path.join(out, 'b.txt'), 'utf8')).toBe('mine');
    expect(readFileSync(path.join(out, 'a.txt'), 'utf8')).toBe('1');
  });

  it('a marker that lists paths outside its folder is refused (--overwrite cannot delete them)', () => {
    const out = userFolder('forged');
    writeFileSync(
      path.join(out, OUTPUT_MARKER),
      JSON.stringify({ format: 'selfsup-output', kind: 'finetune', files: ['../labeled'] }),
    );
    expect(() => checkOutputDir(out, { kind: 'finetune', overwrite: true })).toThrow(
      `${path.join(out, OUTPUT_MARKER)}: not a selfsup output marker`,
    );
  });
});

describe('commands refuse an --out they would damage (exit 2, nothing touched)', () => {
  it('finetune --out <folder with a user file>: refused before any work, the file stays', async () => {
    const out = userFolder('finetune-user');
    const r = await run('finetune', recipe, '--backbone', backbone, '--labels', labeled, '--out', out);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      `selfsup: --out ${out} is not empty and was not written by selfsup (no ${OUTPUT_MARKER})`,
    );
    expect(readdirSync(out)).toEqual(['notes.txt']);
  });

  it('finetune --out <the labeled images> and --out inside them: refused, the images stay', async () => {
    const before = snapshot(labeled);
    for (const out of [labeled, path.join(labeled, 'rows')]) {
      const r = await run('finetune', recipe, '--backbone', backbone, '--labels', labeled, '--out', out);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`--labels ${labeled}: selfsup never writes into what it reads`);
    }
    expect(snapshot(labeled)).toEqual(before);
  });

  it('finetune twice: the second needs --overwrite, which keeps the user files in the folder', async () => {
    const out = path.join(work, 'model');
    expect((await run('finetune', recipe, '--backbone', backbone, '--labels', labeled, '--out', out)).code).toBe(0);
    const written = readOutputMarker(out)!.files;
    expect(written).toContain('classifier.json');
    writeFileSync(path.join(out, 'notes.txt'), 'mine');
    const again = await run('finetune', recipe, '--backbone', backbone, '--labels', labeled, '--out', out);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain(`--out ${out} already holds a selfsup finetune output; pass --overwrite`);
    const replaced = await run(
      'finetune',
      recipe,
      '--backbone',
      backbone,
      '--labels',
      labeled,
      '--out',
      out,
      '--overwrite',
    );
    expect(replaced.code).toBe(0);
    expect(readFileSync(path.join(out, 'notes.txt'), 'utf8')).toBe('mine');
    expect(existsSync(path.join(out, 'classifier.json'))).toBe(true);

    // eval: its default report folder inside the model is fine; the model folder itself is not.
    expect((await run('eval', out, '--labels', labeled)).code).toBe(0);
    expect(readOutputMarker(path.join(out, 'eval-labeled'))?.kind).toBe('eval');
    const intoModel = await run('eval', out, '--labels', labeled, '--out', out);
    expect(intoModel.code).toBe(2);
    expect(intoModel.stderr).toContain(`--out ${out} is <model> ${out}: selfsup never writes into what it reads`);
    const intoLabels = await run('eval', out, '--labels', labeled, '--out', labeled);
    expect(intoLabels.code).toBe(2);
    expect(readFileSync(path.join(out, 'notes.txt'), 'utf8')).toBe('mine');
  }, 120_000);

  it('export <run> --out <run>: refused, the run stays whole', async () => {
    const runDir = path.join(work, 'run-base');
    mkdirSync(path.join(runDir, 'checkpoints'), { recursive: true });
    await writeTinyBackboneExport(path.join(runDir, 'backbone'), 16);
    writeFileSync(path.join(runDir, 'metrics.arrow'), 'metrics');
    const before = snapshot(runDir);
    for (const format of ['safetensors', 'tfjs']) {
      const r = await run('export', runDir, '--format', format, '--out', runDir);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`--out ${runDir} is <source> ${runDir}`);
    }
    const inside = await run('export', runDir, '--format', 'tfjs', '--out', path.join(runDir, 'web'));
    expect(inside.code).toBe(2);
    expect(inside.stderr).toContain(`is inside <source> ${runDir}`);
    expect(snapshot(runDir)).toEqual(before);
  });

  it('export / import --out <folder with a user file>: refused; --overwrite of an export keeps other files', async () => {
    const out = userFolder('export-user');
    const r = await run('export', backbone, '--format', 'safetensors', '--out', out);
    expect(r.code).toBe(2);
    expect(readdirSync(out)).toEqual(['notes.txt']);
    const imported = await run('import', path.join(backbone, 'backbone.safetensors'), '--out', out);
    expect(imported.code).toBe(2);
    expect(readdirSync(out)).toEqual(['notes.txt']);

    const exportDir = path.join(work, 'export-own');
    expect((await run('export', backbone, '--format', 'safetensors', '--out', exportDir)).code).toBe(0);
    writeFileSync(path.join(exportDir, 'README.txt'), 'mine');
    const tfjsOver = await run('export', backbone, '--format', 'tfjs', '--out', exportDir, '--overwrite');
    expect(tfjsOver.code).toBe(2);
    expect(tfjsOver.stderr).toContain('holds a selfsup backbone output, not a backbone-tfjs output');
    expect((await run('export', backbone, '--format', 'safetensors', '--out', exportDir, '--overwrite')).code).toBe(0);
    expect(readdirSync(exportDir).sort()).toEqual([
      OUTPUT_MARKER,
      'README.txt',
      'backbone.safetensors',
      'manifest.json',
    ]);
  });

  it('export --out <file>.safetensors: never replaces a file selfsup did not write', async () => {
    const file = path.join(work, 'theirs.safetensors');
    writeFileSync(file, 'not mine to replace');
    const r = await run('export', backbone, '--format', 'safetensors', '--out', file);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`--out ${file} exists and is not a .safetensors export written by selfsup`);
    const again = await run('export', backbone, '--format', 'safetensors', '--out', file, '--overwrite');
    expect(again.code).toBe(2);
    expect(readFileSync(file, 'utf8')).toBe('not mine to replace');

    const own = path.join(work, 'own.safetensors');
    expect((await run('export', backbone, '--format', 'safetensors', '--out', own)).code).toBe(0);
    expect((await run('export', backbone, '--format', 'safetensors', '--out', own)).code).toBe(2);
    expect((await run('export', backbone, '--format', 'safetensors', '--out', own, '--overwrite')).code).toBe(0);
  });

  it('budget --out <folder with a user file> and embed --out <the data>: refused before any work', async () => {
    const out = userFolder('budget-user');
    const budget = await run(
      'budget',
      recipe,
      '--backbone',
      backbone,
      '--labels',
      labeled,
      '--per-class',
      '2',
      '--seeds',
      '0',
      '--out',
      out,
    );
    expect(budget.code).toBe(2);
    expect(readdirSync(out)).toEqual(['notes.txt']);

    const before = snapshot(labeled);
    const embed = await run('embed', backbone, '--data', labeled, '--out', labeled);
    expect(embed.code).toBe(2);
    expect(embed.stderr).toContain(`--out ${labeled} is --data ${labeled}`);
    const embedUser = await run('embed', backbone, '--data', labeled, '--out', userFolder('embed-user'));
    expect(embedUser.code).toBe(2);
    expect(snapshot(labeled)).toEqual(before);
  });

  it('select / select-study --out <the pool> or a user folder: refused before any work', async () => {
    const before = snapshot(labeled);
    const intoPool = await run('select', backbone, '--data', labeled, '--budget', '2', '--out', labeled);
    expect(intoPool.code).toBe(2);
    expect(intoPool.stderr).toContain(`--out ${labeled} is --data ${labeled}: selfsup never writes into what it reads`);
    const picksInPool = await run(
      'select',
      backbone,
      '--data',
      labeled,
      '--budget',
      '2',
      '--export-picks',
      'copy',
      '--out',
      path.join(labeled, 'rows'),
    );
    expect(picksInPool.code).toBe(2);
    expect(snapshot(labeled)).toEqual(before);
    const user = userFolder('select-user');
    expect((await run('select', backbone, '--data', labeled, '--budget', '2', '--out', user)).code).toBe(2);
    const study = await run(
      'select-study',
      backbone,
      '--pool',
      labeled,
      '--test',
      labeled,
      '--class-folders',
      '--out',
      user,
    );
    expect(study.code).toBe(2);
    expect(readdirSync(user)).toEqual(['notes.txt']);
  });

  it('embed twice: the second needs --overwrite and keeps the user files', async () => {
    const out = path.join(work, 'embedded');
    const args = ['embed', backbone, '--data', labeled, '--out', out, '--no-map'];
    expect((await run(...args)).code).toBe(0);
    writeFileSync(path.join(out, 'notes.txt'), 'mine');
    expect((await run(...args)).code).toBe(2);
    const r = await run(...args, '--overwrite', '--json');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).files.embeddings).toBe(path.join(out, 'embeddings.arrow'));
    expect(readFileSync(path.join(out, 'notes.txt'), 'utf8')).toBe('mine');
  }, 60_000);

  it('scan --full --out <a file selfsup did not write>: refused, the file stays; a rescan replaces its own manifest', async () => {
    const notes = path.join(work, 'notes.txt');
    writeFileSync(notes, 'my notes');
    const r = await run('scan', labeled, '--full', '--out', notes);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`--out ${notes} exists and is not a scan manifest written by selfsup`);
    expect(readFileSync(notes, 'utf8')).toBe('my notes');
    const manifest = path.join(work, 'scan.arrow');
    expect((await run('scan', labeled, '--out', manifest)).code).toBe(0);
    expect((await run('scan', labeled, '--full', '--out', manifest)).code).toBe(0);
  });

  it('pretrain --run-id ../../x is refused; --out inside --data is refused; nothing is created', async () => {
    const runs = path.join(work, 'runs-parent', 'runs');
    const escaped = await run(
      'pretrain',
      'recipes/rotation-small.yaml',
      '--data',
      labeled,
      '--out',
      runs,
      '--run-id',
      '../../escaped',
    );
    expect(escaped.code).toBe(2);
    expect(escaped.stderr).toContain('for --run-id but received "../../escaped"');
    expect(existsSync(path.join(work, 'escaped'))).toBe(false);
    expect(existsSync(runs)).toBe(false);

    const before = snapshot(labeled);
    const inside = await run('pretrain', 'recipes/rotation-small.yaml', '--data', labeled, '--out', labeled);
    expect(inside.code).toBe(2);
    expect(inside.stderr).toContain(`is inside --data ${labeled}: selfsup never writes into what it reads`);
    expect(snapshot(labeled)).toEqual(before);
  });
});
