/** Datasets over folders: unlabeled (from a scan manifest) and class subfolders. */
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { InputError } from '../../util/errors.js';
import type { DecodeOptions } from '../decode.js';
import { readScanManifest } from '../manifest.js';
import { walkFiles } from '../walk.js';
import { FileListSource, indexLabels } from './file-list.js';

/** File extensions treated as images when a folder is listed without a manifest. */
export const IMAGE_EXTENSIONS = new Set([
  '.jpg',
  '.jpeg',
  '.png',
  '.webp',
  '.gif',
  '.tif',
  '.tiff',
  '.avif',
  '.heic',
  '.heif',
  '.bmp',
  '.jp2',
  '.jxl',
]);

/**
 * Unlabeled images listed in a scan manifest: only rows with status "ok", in
 * manifest order. Paths resolve against the manifest's `root`.
 */
export function manifestDataset(manifestFile: string, decode: DecodeOptions = {}): FileListSource {
  const manifest = readScanManifest(manifestFile);
  const paths: string[] = [];
  for (let i = 0; i < manifest.length; i++) {
    if (manifest.status[i] === 'ok') paths.push(path.resolve(manifest.root, manifest.path[i]));
  }
  if (paths.length === 0) throw new InputError(manifestFile, 'no images with status "ok" in this manifest');
  return new FileListSource(paths, undefined, undefined, decode);
}

async function listImages(dir: string): Promise<string[]> {
  const files: string[] = [];
  for await (const entry of walkFiles(dir)) {
    if (entry.kind === 'file' && IMAGE_EXTENSIONS.has(path.extname(entry.path).toLowerCase())) files.push(entry.path);
  }
  return files;
}

/**
 * Unlabeled images in a folder (recursive). With a manifest, only its "ok" rows;
 * without, every file with an image extension (bad ones are then reported by the loader).
 */
export async function folderDataset(
  dir: string,
  options: { manifest?: string; decode?: DecodeOptions } = {},
): Promise<FileListSource> {
  if (options.manifest) return manifestDataset(options.manifest, options.decode);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new InputError(dir, 'not a folder');
  const paths = await listImages(dir);
  if (paths.length === 0) throw new InputError(dir, `no image files (${[...IMAGE_EXTENSIONS].join(', ')})`);
  return new FileListSource(paths, undefined, undefined, options.decode);
}

/**
 * Labelled images in class subfolders (`dir/<class>/**`), classes sorted by
 * name (numerically when all names are integers). With a manifest of `dir`,
 * files whose status is "error" are left out.
 */
export async function classFolderDataset(
  dir: string,
  options: { manifest?: string; decode?: DecodeOptions } = {},
): Promise<FileListSource> {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new InputError(dir, 'not a folder');
  let bad = new Set<string>();
  if (options.manifest) {
    const m = readScanManifest(options.manifest);
    bad = new Set(m.path.filter((_, i) => m.status[i] !== 'ok').map((p) => path.resolve(m.root, p)));
  }
  const paths: string[] = [];
  const names: string[] = [];
  for (const file of await listImages(dir)) {
    const relative = path.relative(dir, file);
    const parts = relative.split(path.sep);
    if (parts.length < 2 || bad.has(file)) continue; // files directly in dir have no class
    paths.push(file);
    names.push(parts[0]);
  }
  if (paths.length === 0) throw new InputError(dir, 'no images in class subfolders (expected dir/<class>/<image>)');
  const { labels, classNames } = indexLabels(names);
  return new FileListSource(paths, labels, classNames, options.decode);
}
