/** Real image files for the data tests, made with sharp (no mocks). */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';

export function tempDir(prefix = 'selfsup-data-'): string {
  return mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** A w x h RGB test card: red rises left to right, green top to bottom, blue is a checker of `seed`. */
export function testCard(width: number, height: number, seed = 0): Buffer {
  const data = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      data[i] = Math.round((255 * x) / Math.max(1, width - 1));
      data[i + 1] = Math.round((255 * y) / Math.max(1, height - 1));
      data[i + 2] = ((x >> 2) + (y >> 2) + seed) % 2 ? 200 : 30;
    }
  }
  return data;
}

export function cardSharp(width: number, height: number, seed = 0): sharp.Sharp {
  return sharp(testCard(width, height, seed), { raw: { width, height, channels: 3 } });
}

export function write(file: string, data: Buffer | string): string {
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, data);
  return file;
}

/** One file of every format sharp writes here, plus the awkward colour kinds. */
export async function makeFormatFiles(dir: string): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  const card = () => cardSharp(40, 30);
  files.jpeg = write(path.join(dir, 'a.jpg'), await card().jpeg().toBuffer());
  files.png = write(path.join(dir, 'b.png'), await card().png().toBuffer());
  files.webp = write(path.join(dir, 'c.webp'), await card().webp().toBuffer());
  files.gif = write(path.join(dir, 'd.gif'), await card().gif().toBuffer());
  files.tiff = write(path.join(dir, 'e.tiff'), await card().tiff().toBuffer());
  files.avif = write(path.join(dir, 'f.avif'), await card().avif().toBuffer());
  files.cmyk = write(path.join(dir, 'g-cmyk.jpg'), await card().toColourspace('cmyk').jpeg().toBuffer());
  files.png16 = write(path.join(dir, 'h-16bit.png'), await card().toColourspace('rgb16').png().toBuffer());
  files.gray = write(
    path.join(dir, 'i-gray.png'),
    await sharp(Buffer.alloc(40 * 30, 77), { raw: { width: 40, height: 30, channels: 1 } })
      .png()
      .toBuffer(),
  );
  files.palette = write(path.join(dir, 'j-palette.png'), await card().png({ palette: true }).toBuffer());
  files.alpha = write(
    path.join(dir, 'k-alpha.png'),
    await sharp({ create: { width: 8, height: 8, channels: 4, background: { r: 255, g: 0, b: 0, alpha: 0 } } })
      .png()
      .toBuffer(),
  );
  return files;
}

/** Every kind of broken file the scanner must survive. */
export async function makeBrokenFiles(dir: string): Promise<Record<string, string>> {
  const jpeg = await cardSharp(64, 48).jpeg().toBuffer();
  const png = await cardSharp(64, 48).png().toBuffer();
  const corrupt = Buffer.from(png);
  corrupt.fill(0x5a, 40, corrupt.length - 20); // keep the header, destroy the data
  const bomb = await sharp({ create: { width: 3000, height: 3000, channels: 3, background: '#000' } })
    .png()
    .toBuffer();
  return {
    empty: write(path.join(dir, 'bad', 'empty.jpg'), Buffer.alloc(0)),
    truncated: write(path.join(dir, 'bad', 'truncated.jpg'), jpeg.subarray(0, Math.floor(jpeg.length / 2))),
    corrupt: write(path.join(dir, 'bad', 'corrupt.png'), corrupt),
    notImage: write(path.join(dir, 'bad', 'notes.txt'), 'these are not pixels\n'),
    bomb: write(path.join(dir, 'bad', 'bomb.png'), bomb),
  };
}
