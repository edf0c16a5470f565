import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openImageSource, siblingIdxLabels } from '../../src/data/open.js';
import { scanFolder } from '../../src/data/scan.js';
import { writeArrowTable } from '../../src/util/arrow.js';

const DEMO = path.resolve(import.meta.dirname, '../../data/fashion-mnist-demo');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'selfsup-open-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('openImageSource: every source kind docs/data.md lists', () => {
  it('an IDX images file with its sibling labels and the classes.txt above it', async () => {
    const images = path.join(DEMO, 'idx', 't10k-images-idx3-ubyte.gz');
    expect(siblingIdxLabels(images)).toBe(path.join(DEMO, 'idx', 't10k-labels-idx1-ubyte.gz'));
    const source = await openImageSource(images);
    expect(source.size).toBe(500);
    expect(source.labels).toHaveLength(500);
    expect(source.classNames?.[0]).toBe('t-shirt');
    expect(source.describe(3)).toBe(`${images}#3`);
  });

  it('a folder of IDX files (train or t10k) and an images,labels pair give the same images', async () => {
    const folder = await openImageSource(path.join(DEMO, 'idx'), { needLabels: true, split: 't10k' });
    const pair = await openImageSource(
      `${path.join(DEMO, 'idx', 't10k-images-idx3-ubyte.gz')},${path.join(DEMO, 'idx', 't10k-labels-idx1-ubyte.gz')}`,
    );
    expect(folder.size).toBe(pair.size);
    expect(Array.from(folder.labels ?? [])).toEqual(Array.from(pair.labels ?? []));
    expect((await folder.load(7, 1)).data).toEqual((await pair.load(7, 1)).data);
    const train = await openImageSource(path.join(DEMO, 'idx'));
    expect(train.describe(0)).toContain('train-images-idx3-ubyte');
  });

  it('class folders with labels (needLabels or classFolders) and a plain folder without', async () => {
    const labeled = await openImageSource(path.join(DEMO, 'labeled'), { needLabels: true });
    expect(labeled.size).toBe(500);
    expect(labeled.classNames).toHaveLength(10);
    const classFolders = await openImageSource(path.join(DEMO, 'labeled'), { classFolders: true });
    expect(classFolders.classNames).toEqual(labeled.classNames);
    const plain = await openImageSource(path.join(DEMO, 'labeled'));
    expect(plain.size).toBe(500);
    expect(plain.labels).toBeUndefined();
  });

  it('a scan manifest (its ok rows), a CSV and an Arrow label table', async () => {
    const folder = path.join(DEMO, 'labeled', 'bag');
    const manifestFile = path.join(tmp, 'bags.arrow');
    const summary = await scanFolder(folder, { out: manifestFile });
    const manifest = await openImageSource(manifestFile);
    expect(manifest.size).toBe(summary.ok);
    expect(manifest.size).toBeGreaterThan(10);
    expect(manifest.labels).toBeUndefined();
    const files = ['ankle-boot/01051.png', 'ankle-boot/01163.png'];
    const csv = path.join(tmp, 'labels.csv');
    writeFileSync(csv, `path,label\n${files.map((f) => `${path.join(DEMO, 'labeled', f)},boot`).join('\n')}\n`);
    const table = await openImageSource(csv, { needLabels: true });
    expect(table.size).toBe(2);
    expect(table.classNames).toEqual(['boot']);
    const arrow = path.join(tmp, 'labels.arrow');
    await writeArrowTable(arrow, { path: files.map((f) => path.join(DEMO, 'labeled', f)), label: ['a', 'b'] });
    const fromArrow = await openImageSource(arrow, { needLabels: true });
    expect(Array.from(fromArrow.labels ?? [])).toEqual([0, 1]);
    expect((await fromArrow.load(1, 1)).data).toEqual((await table.load(1, 1)).data);
  });

  it('names the path when it is none of the known kinds, missing, or has no labels that were needed', async () => {
    const file = path.join(DEMO, 'README.md');
    await expect(openImageSource(file)).rejects.toThrow(
      `${file}: is not a folder, a manifest or label table (.arrow, .csv), an IDX file (*-idx3-ubyte[.gz]) or images,labels IDX files`,
    );
    const missing = path.join(tmp, 'nothing-here');
    await expect(openImageSource(missing)).rejects.toThrow(`${missing}: no such file or folder`);
    const unlabeled = path.join(DEMO, 'unlabeled');
    await expect(openImageSource(path.join(tmp, 'bags.arrow'), { needLabels: true })).rejects.toThrow(
      `${path.join(tmp, 'bags.arrow')}: has no labels`,
    );
    expect((await openImageSource(unlabeled)).labels).toBeUndefined();
  });
});
