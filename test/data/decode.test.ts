import path from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { decodeImage } from '../../src/data/decode.js';
import { InputError } from '../../src/util/errors.js';
import { cardSharp, makeBrokenFiles, makeFormatFiles, tempDir, testCard, write } from './fixtures.js';

describe('decodeImage', () => {
  let dir: string;
  let formats: Record<string, string>;
  let broken: Record<string, string>;
  beforeAll(async () => {
    dir = tempDir();
    formats = await makeFormatFiles(dir);
    broken = await makeBrokenFiles(dir);
  });

  it('decodes every format to 8-bit sRGB, 3 channels or 1', async () => {
    for (const [kind, file] of Object.entries(formats)) {
      const rgb = await decodeImage(file, 3);
      expect(rgb.channels, kind).toBe(3);
      expect(rgb.data.length, kind).toBe(rgb.width * rgb.height * 3);
      const gray = await decodeImage(file, 1);
      expect(gray.channels, kind).toBe(1);
      expect(gray.data.length, kind).toBe(gray.width * gray.height);
    }
  });

  it('keeps the pixels of lossless formats (PNG, 16-bit PNG, TIFF, palette PNG close)', async () => {
    const expected = testCard(40, 30);
    const png = await decodeImage(formats.png, 3);
    expect(Buffer.from(png.data).equals(expected)).toBe(true);
    // 16-bit: the 8-bit values survive the round trip through 16 bits.
    const png16 = await decodeImage(formats.png16, 3);
    let maxDiff = 0;
    for (let i = 0; i < expected.length; i++) maxDiff = Math.max(maxDiff, Math.abs(png16.data[i] - expected[i]));
    expect(maxDiff).toBeLessThanOrEqual(1);
  });

  it('converts CMYK to sRGB with the colours roughly kept', async () => {
    const expected = testCard(40, 30);
    const cmyk = await decodeImage(formats.cmyk, 3);
    expect(cmyk.width).toBe(40);
    let sum = 0;
    for (let i = 0; i < expected.length; i++) sum += Math.abs(cmyk.data[i] - expected[i]);
    // Mean absolute error stays small (JPEG + colour conversion), far below a channel swap or inversion.
    expect(sum / expected.length).toBeLessThan(25);
  });

  it('flattens alpha on the fixed mid-gray background', async () => {
    const image = await decodeImage(formats.alpha, 3);
    expect([...image.data.subarray(0, 3)]).toEqual([128, 128, 128]);
    const white = await decodeImage(formats.alpha, 3, { background: [255, 255, 255] });
    expect([...white.data.subarray(0, 3)]).toEqual([255, 255, 255]);
  });

  it('applies EXIF orientation: pixels move and width/height swap', async () => {
    // Orientation 6 = the stored image must be rotated 90 degrees clockwise to display.
    const stored = await cardSharp(40, 30).png().toBuffer();
    const file = write(
      path.join(dir, 'exif6.jpg'),
      await sharp(stored).jpeg({ quality: 100 }).withMetadata({ orientation: 6 }).toBuffer(),
    );
    const image = await decodeImage(file, 3);
    expect([image.width, image.height]).toEqual([30, 40]);
    // After a clockwise turn, the stored top-left (red 0, green 0) is at the top-right,
    // and the stored bottom-left (green 255) is at the top-left.
    const at = (x: number, y: number) => [...image.data.subarray((y * 30 + x) * 3, (y * 30 + x) * 3 + 2)];
    const [topLeftRed, topLeftGreen] = at(1, 1);
    const [topRightRed, topRightGreen] = at(28, 1);
    expect(topLeftGreen).toBeGreaterThan(200);
    expect(topLeftRed).toBeLessThan(40);
    expect(topRightGreen).toBeLessThan(40);
    expect(topRightRed).toBeLessThan(40);
  });

  it('shrinks on load with maxShorterSide', async () => {
    const image = await decodeImage(formats.jpeg, 3, { maxShorterSide: 15 });
    expect([image.width, image.height]).toEqual([20, 15]);
  });

  it('rejects every broken kind with an InputError naming the file and the reason', async () => {
    const expectations: Record<string, RegExp> = {
      empty: /empty file/,
      truncated: /truncated/,
      corrupt: /corrupt|truncated/,
      notImage: /not an image/,
      bomb: /too many pixels/,
    };
    for (const [kind, file] of Object.entries(broken)) {
      const error = await decodeImage(file, 3, { maxPixels: 4_000_000 }).catch((e) => e);
      expect(error, kind).toBeInstanceOf(InputError);
      expect(error.message, kind).toContain(file);
      expect(error.message, kind).toMatch(expectations[kind]);
    }
  });
});
