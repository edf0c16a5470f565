/**
 * A contact sheet: thumbnails of images in a grid, each with a short caption
 * underneath, as one PNG. For the person who labels a selection.
 */
import sharp from 'sharp';
import type { RawImage } from '../data/types.js';
import { writeFileAtomic } from '../util/atomic.js';

export interface ContactSheetTile {
  image: RawImage;
  /** One short line under the thumbnail (clipped to the tile width). */
  caption: string;
}

export interface ContactSheetOptions {
  /** Thumbnail side in px (the image is fitted inside, aspect kept). Default 96. */
  tileSize?: number;
  /** Tiles per row. Default 10. */
  columns?: number;
}

function escapeXml(text: string): string {
  return text.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** Renders the tiles into a PNG buffer. */
export async function contactSheetPng(tiles: ContactSheetTile[], options: ContactSheetOptions = {}): Promise<Buffer> {
  const tile = options.tileSize ?? 96;
  const columns = Math.max(1, Math.min(options.columns ?? 10, tiles.length || 1));
  const captionHeight = 14;
  const pad = 4;
  const cellWidth = tile + pad;
  const cellHeight = tile + captionHeight + pad;
  const rows = Math.max(1, Math.ceil(tiles.length / columns));
  const width = columns * cellWidth + pad;
  const height = rows * cellHeight + pad;
  const maxChars = Math.max(4, Math.floor(tile / 6));
  const composites = await Promise.all(
    tiles.map(async (t, i) => {
      const thumb = await sharp(Buffer.from(t.image.data.buffer, t.image.data.byteOffset, t.image.data.byteLength), {
        raw: { width: t.image.width, height: t.image.height, channels: t.image.channels },
      })
        .resize(tile, tile, { fit: 'contain', background: { r: 255, g: 255, b: 255, alpha: 1 } })
        .toColourspace('srgb')
        .png()
        .toBuffer();
      const x = pad + (i % columns) * cellWidth;
      const y = pad + Math.floor(i / columns) * cellHeight;
      return { input: thumb, left: x, top: y };
    }),
  );
  const captions = tiles
    .map((t, i) => {
      const x = pad + (i % columns) * cellWidth;
      const y = pad + Math.floor(i / columns) * cellHeight + tile + captionHeight - 3;
      const text = t.caption.length > maxChars ? `${t.caption.slice(0, maxChars - 1)}…` : t.caption;
      return `<text x="${x}" y="${y}" font-family="sans-serif" font-size="10" fill="#222">${escapeXml(text)}</text>`;
    })
    .join('');
  const overlay = Buffer.from(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">${captions}</svg>`,
  );
  return sharp({ create: { width, height, channels: 3, background: { r: 255, g: 255, b: 255 } } })
    .composite([...composites, { input: overlay, left: 0, top: 0 }])
    .png()
    .toBuffer();
}

/** Writes the contact sheet atomically. */
export async function writeContactSheet(
  file: string,
  tiles: ContactSheetTile[],
  options: ContactSheetOptions = {},
): Promise<void> {
  await writeFileAtomic(file, await contactSheetPng(tiles, options));
}
