import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import { classFolderDataset, folderDataset } from '../../src/data/datasets/folder.js';
import { encodeIdx, FASHION_MNIST_CLASSES, idxDataset } from '../../src/data/datasets/idx.js';
import { labelTableDataset, parseCsv } from '../../src/data/datasets/label-table.js';
import { formatClassCounts, sourceClassCounts, splitDataset } from '../../src/data/datasets/split.js';
import { writeArrowTable } from '../../src/util/arrow.js';
import { cardSharp, tempDir, write } from './fixtures.js';

describe('datasets', () => {
  let dir: string;
  beforeAll(async () => {
    dir = tempDir();
    const counts = { cat: 6, dog: 3, owl: 1 };
    for (const [name, n] of Object.entries(counts)) {
      for (let i = 0; i < n; i++) {
        write(path.join(dir, 'classes', name, `${i}.png`), await cardSharp(12, 10, i).png().toBuffer());
      }
    }
    write(path.join(dir, 'classes', 'loose.png'), await cardSharp(12, 10).png().toBuffer());
  });

  it('class subfolders: classes sorted, labels per file, counts reported', async () => {
    const source = await classFolderDataset(path.join(dir, 'classes'));
    expect(source.classNames).toEqual(['cat', 'dog', 'owl']);
    expect(source.size).toBe(10); // loose.png has no class folder
    expect(sourceClassCounts(source)).toEqual({ cat: 6, dog: 3, owl: 1 });
    expect(formatClassCounts(sourceClassCounts(source))).toBe('cat 6, dog 3, owl 1 (largest/smallest 6.0x)');
    const image = await source.load(0, 3);
    expect([image.width, image.height, image.channels]).toEqual([12, 10, 3]);
    expect(source.describe(0)).toBe(path.join(dir, 'classes', 'cat', '0.png'));
    const unlabeled = await folderDataset(path.join(dir, 'classes'));
    expect(unlabeled.size).toBe(11);
    expect(unlabeled.labels).toBeUndefined();
  });

  it('CSV and Arrow label tables, paths relative to the table', async () => {
    const csv = write(
      path.join(dir, 'labels.csv'),
      'path,label,note\nclasses/cat/0.png,cat,"a, quoted ""note"""\nclasses/dog/1.png,dog,\nclasses/owl/0.png,,unlabeled\n',
    );
    const source = labelTableDataset(csv);
    expect(source.size).toBe(3);
    expect(source.classNames).toEqual(['cat', 'dog']);
    expect([...source.labels!]).toEqual([0, 1, -1]);
    expect((await source.load(1, 1)).channels).toBe(1);
    expect(parseCsv('a,b\n"x,1","y""z"\n')).toEqual([
      ['a', 'b'],
      ['x,1', 'y"z'],
    ]);
    const arrow = path.join(dir, 'labels.arrow');
    await writeArrowTable(arrow, { path: ['classes/dog/0.png', 'classes/cat/2.png'], label: [3, 1] });
    const fromArrow = labelTableDataset(arrow);
    expect(fromArrow.classNames).toEqual(['1', '3']);
    expect([...fromArrow.labels!]).toEqual([1, 0]);
    const missing = write(path.join(dir, 'bad.csv'), 'file,label\nx.png,1\n');
    expect(() => labelTableDataset(missing)).toThrow(
      `${missing}: no column "path" in the header (columns: file, label)`,
    );
  });

  it('IDX files, gzipped or not', async () => {
    const pixels = new Uint8Array(5 * 4 * 3).map((_, i) => i * 4);
    const labels = Uint8Array.from([0, 1, 2, 1, 0]);
    const images = write(path.join(dir, 'images.idx'), Buffer.from(encodeIdx([5, 4, 3], pixels)));
    const labelFile = path.join(dir, 'labels.idx.gz');
    writeFileSync(labelFile, gzipSync(encodeIdx([5], labels)));
    const source = idxDataset(images, labelFile, FASHION_MNIST_CLASSES.slice(0, 3));
    expect(source.size).toBe(5);
    expect([...source.labels!]).toEqual([0, 1, 2, 1, 0]);
    const gray = await source.load(1, 1);
    expect([gray.width, gray.height]).toEqual([3, 4]);
    expect([...gray.data]).toEqual([...pixels.subarray(12, 24)]);
    const rgb = await source.load(1, 3);
    expect([...rgb.data.subarray(0, 6)]).toEqual([48, 48, 48, 52, 52, 52]);
    expect(source.describe(3)).toBe(`${images}#3`);
    const short = write(path.join(dir, 'short.idx'), Buffer.from(encodeIdx([5, 4, 3], pixels)).subarray(0, 30));
    expect(() => idxDataset(short)).toThrow(`${short}: truncated: shape [5, 4, 3] needs 76 bytes, file has 30`);
    expect(() => idxDataset(path.join(dir, 'labels.csv'))).toThrow(/not an IDX file/);
  });

  it('splits deterministically from a seed, stratified by class', async () => {
    const source = await classFolderDataset(path.join(dir, 'classes'));
    const a = splitDataset(source, { valFraction: 0.34, seed: 1 });
    const b = splitDataset(source, { valFraction: 0.34, seed: 1 });
    expect(a).toEqual(b);
    expect(a.train.length + a.val.length).toBe(10);
    expect(new Set([...a.train, ...a.val]).size).toBe(10);
    // Stratified: round(6 * .34) = 2 cats, round(3 * .34) = 1 dog, round(1 * .34) = 0 owls.
    expect(sourceClassCounts(source, a.val)).toEqual({ cat: 2, dog: 1, owl: 0 });
    const seeds = new Set(
      [1, 2, 3, 4, 5].map((seed) => [...splitDataset(source, { valFraction: 0.34, seed }).val].join()),
    );
    expect(seeds.size).toBeGreaterThan(1);
    expect(() => splitDataset(source, { valFraction: 1, seed: 1 })).toThrow(
      'Expected a number between 0 and 0.999 for valFraction but received 1 (number)',
    );
  });
});
