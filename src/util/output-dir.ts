/**
 * Output folders and files: where a command may write, and how it replaces an
 * earlier output without touching anything else.
 *
 * A command writes into `--out` only when it is
 *  - new (does not exist) or an empty folder, or
 *  - a folder selfsup wrote for the same kind of output (it holds the marker
 *    `.selfsup-output.json`, which names the kind and lists the files written), and
 *    `--overwrite` is given: then only the files the marker lists are replaced;
 *    anything else in the folder is kept.
 * It never writes into what it reads: `--out` may not be, be inside, or contain an input.
 * A single output file (a scan manifest, a `.safetensors` export) is replaced only
 * when selfsup wrote it.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, promises as fsp, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic } from './atomic.js';
import { UsageError } from './errors.js';

export const OUTPUT_MARKER = '.selfsup-output.json';

/** The marker file's content. */
export interface OutputMarker {
  /** Always `selfsup-output`. */
  format: 'selfsup-output';
  /** What the folder holds: `finetune`, `backbone`, `backbone-tfjs`, `eval`, `budget`, `embed`, `demo`. */
  kind: string;
  /** Names of the entries (files or folders) directly in the folder that selfsup wrote. */
  files: string[];
  writtenAt: string;
}

/** An input a command reads, which its output may not overlap. */
export interface OutputInput {
  path: string;
  /** How the user gave it, for the message (`--labels`, `<model>`). */
  option: string;
  /** The output may be a subfolder of this input (eval's default report folder inside the model). */
  outputMayBeInside?: boolean;
}

export interface OutputDirOptions {
  /** The kind of output; an existing selfsup folder of another kind is refused. */
  kind: string;
  /** Replace an earlier selfsup output of the same kind (only the files its marker lists). */
  overwrite?: boolean;
  /** What the command reads. */
  inputs?: OutputInput[];
  /** The option that named the folder, for messages (default `--out`). */
  option?: string;
}

/**
 * The inputs of a command by the option or argument that named them
 * (`{ '<model>': job.model, '--data': job.data }`): unset ones are left out, and
 * an `images,labels` pair of IDX files counts as its two files.
 */
export function namedInputs(byOption: Record<string, string | undefined>): OutputInput[] {
  return Object.entries(byOption).flatMap(([option, spec]) =>
    spec ? spec.split(',').map((file) => ({ path: file, option })) : [],
  );
}

/**
 * Checks before any work that `job.out` may receive an output of `kind`: the
 * job's fields named in `inputs` are what it reads, each with the option that
 * named it (`{ model: '<model>', data: '--data' }`). Returns the options to write
 * the folder with later (writeOutputDir, beginOutputDir).
 */
export function claimOutputDir<Job extends { out: string; overwrite?: boolean }>(
  job: Job,
  kind: string,
  inputs: Partial<Record<keyof Job, string>>,
): OutputDirOptions {
  const byOption = Object.entries(inputs).map(([field, option]) => [option, job[field as keyof Job]]);
  const options: OutputDirOptions = {
    kind,
    overwrite: job.overwrite,
    inputs: namedInputs(Object.fromEntries(byOption) as Record<string, string | undefined>),
  };
  checkOutputDir(job.out, options);
  return options;
}

/** What a check found at the output path. */
export type OutputDirState = { state: 'new' } | { state: 'empty' } | { state: 'replace'; files: string[] };

/** The real path of `p`, resolving symlinks of the part that exists. */
function canonicalPath(p: string): string {
  let existing = path.resolve(p);
  const rest: string[] = [];
  for (;;) {
    try {
      return path.join(realpathSync(existing), ...rest.reverse());
    } catch {
      const parent = path.dirname(existing);
      if (parent === existing) return path.resolve(p);
      rest.push(path.basename(existing));
      existing = parent;
    }
  }
}

/** True when `child` is `parent` or lies inside it. */
function isWithin(child: string, parent: string): boolean {
  const rel = path.relative(parent, child);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel));
}

/** Throws a UsageError when `out` is, is inside, or contains one of `inputs`. */
export function assertNotAnInput(out: string, inputs: OutputInput[] = [], option = '--out'): void {
  const target = canonicalPath(out);
  for (const input of inputs) {
    if (!input.path) continue;
    const source = canonicalPath(input.path);
    const where =
      target === source
        ? 'is'
        : isWithin(target, source) && !input.outputMayBeInside
          ? 'is inside'
          : isWithin(source, target)
            ? 'contains'
            : undefined;
    if (where) {
      throw new UsageError(
        `${option} ${out} ${where} ${input.option} ${input.path}: selfsup never writes into what it reads; pass another ${option}`,
      );
    }
  }
}

/** Reads and checks the marker of `dir`; undefined when there is none. */
export function readOutputMarker(dir: string): OutputMarker | undefined {
  const file = path.join(dir, OUTPUT_MARKER);
  if (!existsSync(file)) return undefined;
  let marker: OutputMarker;
  try {
    marker = JSON.parse(readFileSync(file, 'utf8')) as OutputMarker;
  } catch (e) {
    throw new UsageError(`${file}: not valid JSON (${(e as Error).message}); remove it or pass another --out`);
  }
  const plainName = (n: unknown) =>
    typeof n === 'string' && n !== '' && n !== '.' && n !== '..' && n !== OUTPUT_MARKER && path.basename(n) === n;
  if (
    marker?.format !== 'selfsup-output' ||
    typeof marker.kind !== 'string' ||
    !Array.isArray(marker.files) ||
    !marker.files.every(plainName)
  ) {
    throw new UsageError(
      `${file}: not a selfsup output marker (Expected {format: "selfsup-output", kind, files: [names in the folder]}); remove it or pass another --out`,
    );
  }
  return marker;
}

/**
 * Checks that `out` may receive an output of `options.kind` (see the module comment);
 * throws a UsageError that names the folder and says what to do otherwise.
 * Call it before any long work, and again (via {@link writeOutputDir}) when writing.
 */
export function checkOutputDir(out: string, options: OutputDirOptions): OutputDirState {
  const option = options.option ?? '--out';
  assertNotAnInput(out, options.inputs, option);
  if (!existsSync(out)) return { state: 'new' };
  if (!statSync(out).isDirectory()) throw new UsageError(`${option} ${out} is a file; pass a folder`);
  const entries = readdirSync(out);
  if (entries.length === 0) return { state: 'empty' };
  const marker = readOutputMarker(out);
  if (!marker) {
    throw new UsageError(
      `${option} ${out} is not empty and was not written by selfsup (no ${OUTPUT_MARKER}); ` +
        'selfsup writes only into a new or empty folder or one of its own outputs: pass another folder',
    );
  }
  if (marker.kind !== options.kind) {
    throw new UsageError(
      `${option} ${out} holds a selfsup ${marker.kind} output, not a ${options.kind} output; pass another folder`,
    );
  }
  if (!options.overwrite) {
    throw new UsageError(
      `${option} ${out} already holds a selfsup ${options.kind} output; pass --overwrite to replace it ` +
        '(only the files selfsup wrote there are replaced) or another folder',
    );
  }
  return { state: 'replace', files: marker.files };
}

function siblingTemp(target: string, suffix: string): string {
  return path.join(
    path.dirname(target),
    `.${path.basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.${suffix}`,
  );
}

function markerText(kind: string, files: string[]): string {
  const marker: OutputMarker = { format: 'selfsup-output', kind, files, writtenAt: new Date().toISOString() };
  return `${JSON.stringify(marker, null, 2)}\n`;
}

/**
 * Writes an output folder: `fill` writes every output into a temporary sibling
 * folder; then a new or empty `out` is replaced by it in one rename, or (with
 * `overwrite`, in a selfsup folder of the same kind) the entries the old marker
 * lists are swapped for the new ones and every other entry is kept. The marker
 * lists what was written. Returns the names written.
 */
export async function writeOutputDir(
  out: string,
  options: OutputDirOptions,
  fill: (dir: string) => Promise<void>,
): Promise<string[]> {
  const target = path.resolve(out);
  const state = checkOutputDir(target, options);
  await fsp.mkdir(path.dirname(target), { recursive: true });
  const staging = siblingTemp(target, 'tmp');
  await fsp.mkdir(staging);
  try {
    await fill(staging);
    const written = (await fsp.readdir(staging)).filter((n) => n !== OUTPUT_MARKER).sort();
    if (state.state !== 'replace') {
      await writeFileAtomic(path.join(staging, OUTPUT_MARKER), markerText(options.kind, written));
      if (state.state === 'empty') await fsp.rmdir(target);
      await fsp.rename(staging, target);
      return written;
    }
    const foreign = written.find((n) => !state.files.includes(n) && existsSync(path.join(target, n)));
    if (foreign) {
      throw new UsageError(
        `${path.join(target, foreign)} was not written by selfsup (not listed in ${OUTPUT_MARKER}); ` +
          'selfsup does not replace it: move it away or pass another folder',
      );
    }
    // The marker lists old and new while the entries are swapped, then only the new ones.
    const markerFile = path.join(target, OUTPUT_MARKER);
    await writeFileAtomic(markerFile, markerText(options.kind, [...new Set([...state.files, ...written])].sort()));
    const old = siblingTemp(target, 'old');
    await fsp.mkdir(old);
    for (const name of state.files) {
      if (existsSync(path.join(target, name))) await fsp.rename(path.join(target, name), path.join(old, name));
    }
    for (const name of written) await fsp.rename(path.join(staging, name), path.join(target, name));
    await writeFileAtomic(markerFile, markerText(options.kind, written));
    await fsp.rm(old, { recursive: true, force: true });
    await fsp.rm(staging, { recursive: true, force: true });
    return written;
  } catch (e) {
    await fsp.rm(staging, { recursive: true, force: true });
    throw e;
  }
}

/**
 * Prepares `out` for a command that writes its outputs in place, one after another
 * (the demo): checks it as {@link checkOutputDir} does, removes the entries an earlier
 * output of the same kind listed, and writes a marker listing `files`.
 */
export async function beginOutputDir(out: string, options: OutputDirOptions, files: string[]): Promise<void> {
  const target = path.resolve(out);
  const state = checkOutputDir(target, options);
  await fsp.mkdir(target, { recursive: true });
  if (state.state === 'replace') {
    for (const name of state.files) await fsp.rm(path.join(target, name), { recursive: true, force: true });
  }
  await writeFileAtomic(path.join(target, OUTPUT_MARKER), markerText(options.kind, [...files].sort()));
}

export interface OutputFileOptions {
  /** True when selfsup wrote `file` (e.g. it is a scan manifest); only such a file is ever replaced. */
  isOwn: (file: string) => boolean;
  /** What selfsup writes there, for messages (`a scan manifest`). */
  what: string;
  /** Replacing a file selfsup wrote needs `overwrite` (default); false: it is replaced without asking. */
  requireOverwrite?: boolean;
  overwrite?: boolean;
  inputs?: OutputInput[];
  option?: string;
}

/** Checks that the single output file `file` may be written; throws a UsageError naming it otherwise. */
export function checkOutputFile(file: string, options: OutputFileOptions): void {
  const option = options.option ?? '--out';
  assertNotAnInput(file, options.inputs, option);
  if (!existsSync(file)) return;
  if (statSync(file).isDirectory()) throw new UsageError(`${option} ${file} is a folder; pass a file name`);
  if (!options.isOwn(file)) {
    throw new UsageError(
      `${option} ${file} exists and is not ${options.what} written by selfsup; selfsup never replaces a file it did not write: pass another ${option}`,
    );
  }
  if ((options.requireOverwrite ?? true) && !options.overwrite) {
    throw new UsageError(
      `${option} ${file} already holds ${options.what}; pass --overwrite to replace it or another ${option}`,
    );
  }
}
