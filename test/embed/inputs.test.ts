import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { openImagesForEmbedding, siblingIdxLabels } from '../../src/embed/inputs.js';

const DEMO = path.resolve(import.meta.dirname, '../../data/fashion-mnist-demo');

describe('openImagesForEmbedding', () => {
  it('opens an IDX images file with its sibling labels and the classes.txt above it', async () => {
    const images = path.join(DEMO, 'idx', 't10k-images-idx3-ubyte.gz');
    expect(siblingIdxLabels(images)).toBe(path.join(DEMO, 'idx', 't10k-labels-idx1-ubyte.gz'));
    const source = await openImagesForEmbedding(images);
    expect(source.size).toBe(500);
    expect(source.labels).toHaveLength(500);
    expect(source.classNames?.[0]).toBe('t-shirt');
    expect(source.describe(3)).toBe(`${images}#3`);
  });

  it('opens class folders with labels and a plain folder without', async () => {
    const labeled = await openImagesForEmbedding(path.join(DEMO, 'labeled'), { classFolders: true });
    expect(labeled.size).toBe(500);
    expect(labeled.classNames).toHaveLength(10);
    const plain = await openImagesForEmbedding(path.join(DEMO, 'labeled'));
    expect(plain.labels).toBeUndefined();
  });

  it('names a path that is none of the known kinds', async () => {
    const file = path.join(DEMO, 'README.md');
    await expect(openImagesForEmbedding(file)).rejects.toThrow(
      `${file}: is not a folder, a manifest or label table (.arrow, .csv) or an IDX file (*-idx3-ubyte[.gz])`,
    );
  });
});
