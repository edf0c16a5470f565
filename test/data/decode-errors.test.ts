import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { describeDecodeError, missingEndMarker } from '../../src/data/decode.js';

describe('decode error reasons', () => {
  it('names a cut-off file as truncated even when libvips lost its message', async () => {
    const raw = { raw: { width: 8, height: 8, channels: 3 as const } };
    const pixels = Buffer.alloc(8 * 8 * 3, 90);
    const jpeg = await sharp(pixels, raw).jpeg().toBuffer();
    const png = await sharp(pixels, raw).png().toBuffer();
    const gif = await sharp(pixels, raw).gif().toBuffer();
    for (const whole of [jpeg, png, gif]) {
      expect(missingEndMarker(whole)).toBe(false);
      const cut = whole.subarray(0, Math.floor(whole.length / 2));
      expect(missingEndMarker(cut)).toBe(true);
      expect(describeDecodeError(new Error('Unknown error'), cut)).toBe(
        "truncated: the file ends before the image's end marker (Unknown error)",
      );
      expect(describeDecodeError(new Error('Unknown error'), whole)).toBe('corrupt: Unknown error');
    }
    expect(missingEndMarker(Buffer.from('plain text, not an image'))).toBe(false);
  });
});
