import { describe, expect, it } from 'vitest';
import {
  adjustBrightness,
  adjustContrast,
  adjustHue,
  adjustSaturation,
  colorJitter,
  drawColorJitter,
  gaussianBlur,
  solarize,
  toGrayscale,
} from '../../src/data/augment/color.js';
import {
  centerCrop,
  flipHorizontal,
  flipVertical,
  jigsawTiles,
  randomCropOffset,
  randomResizedCropBox,
  resizeShorter,
  rotate90,
  sampleBox,
} from '../../src/data/augment/geometry.js';
import { type FloatImage, resampleBox, toFloatImage } from '../../src/data/augment/image.js';
import { runPipeline, validatePipeline } from '../../src/data/augment/pipeline.js';
import { JIGSAW_PIPELINE, SIMCLR_PIPELINE } from '../../src/data/augment/presets.js';
import type { RawImage } from '../../src/data/types.js';
import { createRng, type Rng } from '../../src/util/rng.js';
import { testCard } from './fixtures.js';

const card = (w: number, h: number): RawImage => ({
  data: new Uint8Array(testCard(w, h)),
  width: w,
  height: h,
  channels: 3,
});
const pixel = (img: FloatImage, x: number, y: number) =>
  Array.from(img.data.subarray((y * img.width + x) * img.channels, (y * img.width + x + 1) * img.channels));

/** An Rng whose int() answers are scripted (and checked to be in range); `asked` records each n. */
function scriptedRng(answers: number[], asked: number[]): Rng {
  const rng = {
    int(n: number): number {
      asked.push(n);
      const answer = answers.shift();
      if (answer === undefined || answer < 0 || answer >= n) throw new Error(`no scripted answer in [0, ${n})`);
      return answer;
    },
    derive: () => rng,
  };
  return rng as unknown as Rng;
}

describe('resampling and geometry', () => {
  it('resampling to the same size is the identity; a constant image stays constant when shrunk', () => {
    const image = card(20, 10);
    const same = resampleBox(image, 0, 0, 20, 10, 20, 10);
    expect(same.data).toEqual(toFloatImage(image).data);
    const flat: RawImage = { data: new Uint8Array(300 * 200 * 3).fill(100), width: 300, height: 200, channels: 3 };
    const small = resampleBox(flat, 10, 5, 280, 190, 7, 5);
    for (const v of small.data) expect(v).toBeCloseTo(100 / 255, 5);
  });

  it('shrinking is antialiased: a 1-px checkerboard becomes mid-gray, not aliased stripes', () => {
    const data = new Uint8Array(64 * 64);
    for (let y = 0; y < 64; y++) for (let x = 0; x < 64; x++) data[y * 64 + x] = (x + y) % 2 ? 255 : 0;
    const out = resampleBox({ data, width: 64, height: 64, channels: 1 }, 0, 0, 64, 64, 8, 8);
    for (const v of out.data) expect(Math.abs(v - 0.5)).toBeLessThan(0.05);
  });

  it('resize makes the shorter side the size (torchvision Resize(int))', () => {
    const out = resizeShorter(card(40, 30), 15);
    expect([out.width, out.height]).toEqual([20, 15]);
    const tall = resizeShorter(card(30, 45), 10);
    expect([tall.width, tall.height]).toEqual([10, 15]);
  });

  it('center crop takes the middle and pads with zeros when the image is smaller', () => {
    const image = card(40, 30);
    const crop = centerCrop(image, 10);
    expect(pixel(crop, 0, 0)).toEqual(pixel(toFloatImage(image), 15, 10));
    const padded = centerCrop(card(4, 4), 6);
    expect(pixel(padded, 0, 0)).toEqual([0, 0, 0]);
    expect(pixel(padded, 1, 1)).toEqual(pixel(toFloatImage(card(4, 4)), 0, 0));
  });

  it('randomResizedCrop boxes follow torchvision: inside the image, area in scale, ratio in range', () => {
    const rng = createRng('rrc');
    for (let i = 0; i < 200; i++) {
      const box = randomResizedCropBox(120, 80, [0.08, 1], [3 / 4, 4 / 3], rng);
      expect(box.left + box.width).toBeLessThanOrEqual(120);
      expect(box.top + box.height).toBeLessThanOrEqual(80);
      expect(box.left).toBeGreaterThanOrEqual(0);
      expect(box.top).toBeGreaterThanOrEqual(0);
      const area = (box.width * box.height) / (120 * 80);
      // Rounding of w and h moves the area a little around the drawn fraction.
      expect(area).toBeGreaterThan(0.06);
      expect(box.width / box.height).toBeGreaterThan(0.7);
      expect(box.width / box.height).toBeLessThan(1.45);
    }
  });

  it('randomResizedCrop falls back to the central crop with the ratio clamped', () => {
    // A 100x10 strip cannot hold a 90%-area square: 10 failed tries, then the fallback.
    expect(randomResizedCropBox(100, 10, [0.9, 1], [1, 1], createRng(1))).toEqual({
      top: 0,
      left: 45,
      height: 10,
      width: 10,
    });
    expect(randomResizedCropBox(10, 100, [0.9, 1], [1, 1], createRng(1))).toEqual({
      top: 45,
      left: 0,
      height: 10,
      width: 10,
    });
  });

  it('randomCrop pads by `padding` px of `fill` and takes size x size pixels at the drawn offset, unresampled', () => {
    // A 5x4 one-channel ramp, value (8y + x) / 64 (exact in float32, all below the fill 0.75).
    const ramp: FloatImage = {
      data: Float32Array.from({ length: 20 }, (_, i) => (8 * Math.floor(i / 5) + (i % 5)) / 64),
      width: 5,
      height: 4,
      channels: 1,
    };
    const F = 48; // the fill 0.75, in 64ths
    const crop = (top: number, left: number, fill?: number) => {
      const asked: number[] = [];
      const rng = scriptedRng([top, left], asked);
      const out = runPipeline(ramp, [{ op: 'randomCrop', size: 4, padding: 2, fill }], rng);
      // The padded image is 9x8: top drawn first from 0..4, then left from 0..5 (torchvision's order).
      expect(asked).toEqual([5, 6]);
      expect(out.shape).toEqual([4, 4, 1]);
      return Array.from(out.data, (v) => v * 64);
    };
    // Top-right corner of the padded image: padded rows 0-3 are image rows -2..1, columns 5-8 are image columns 3..6.
    expect(crop(0, 5, 0.75)).toEqual([F, F, F, F, F, F, F, F, 3, 4, F, F, 11, 12, F, F]);
    // Bottom-left corner: image rows 2..5, columns -2..1.
    expect(crop(4, 0, 0.75)).toEqual([F, F, 16, 17, F, F, 24, 25, F, F, F, F, F, F, F, F]);
    // Centre: the image itself, shifted by nothing.
    expect(crop(2, 2, 0.75)).toEqual([0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27]);
    // The default fill is 0 (black before normalisation).
    expect(crop(0, 0)).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 8, 9]);
    // Decoded 8-bit images: the same pixels on the 0-1 scale.
    const raw = card(6, 5);
    const rng = scriptedRng([1, 2], []);
    const out = runPipeline(raw, [{ op: 'randomCrop', size: 6, padding: 1, fill: 0.5 }], rng);
    const expected = toFloatImage(raw);
    const got: FloatImage = { data: out.data, width: 6, height: 6, channels: 3 };
    // Top 1, left 2 in the 8x7 padded image: output (x, y) is image (x + 1, y); row 5 and column 5 are fill.
    for (let y = 0; y < 6; y++)
      for (let x = 0; x < 6; x++)
        expect(pixel(got, x, y)).toEqual(y < 5 && x < 5 ? pixel(expected, x + 1, y) : [0.5, 0.5, 0.5]);
  });

  it('randomCrop offsets reach every position of the padded image; no draw when it is exactly the size', () => {
    const rng = createRng('crop');
    const tops = new Set<number>();
    const lefts = new Set<number>();
    for (let i = 0; i < 400; i++) {
      const { top, left } = randomCropOffset(8, 6, 6, 2, rng);
      tops.add(top);
      lefts.add(left);
    }
    // An 8x6 image padded by 2 is 12x10: a 6 px crop starts 2 px before the image up to its far edge + 2 - 6.
    expect([...tops].sort((a, b) => a - b)).toEqual([-2, -1, 0, 1, 2]);
    expect([...lefts].sort((a, b) => a - b)).toEqual([-2, -1, 0, 1, 2, 3, 4]);
    expect(randomCropOffset(4, 4, 8, 2, scriptedRng([], []))).toEqual({ top: -2, left: -2 });
    expect(() => runPipeline(card(5, 4), [{ op: 'randomCrop', size: 9, padding: 2 }], createRng(1))).toThrow(
      'randomCrop: a 5x4 image padded by 2 px is 9x8, smaller than the 9x9 crop; resize the image first or raise padding',
    );
  });

  it('flips are involutions and rotate90 four times is the identity; one turn is counter-clockwise', () => {
    const image = toFloatImage(card(6, 4));
    const original = Float32Array.from(image.data);
    expect(flipHorizontal(flipHorizontal(image)).data).toEqual(original);
    expect(flipVertical(flipVertical(image)).data).toEqual(original);
    const flipped = flipHorizontal({ ...image, data: Float32Array.from(original) });
    expect(pixel(flipped, 0, 0)).toEqual(pixel(image, 5, 0));
    let turned = image;
    for (let k = 0; k < 4; k++) turned = rotate90(turned, 1);
    expect(turned.data).toEqual(original);
    const once = rotate90(image, 1);
    expect([once.width, once.height]).toEqual([4, 6]);
    // Counter-clockwise: the top-right corner moves to the top-left.
    expect(pixel(once, 0, 0)).toEqual(pixel(image, 5, 0));
    expect(rotate90(image, 2).data).toEqual(rotate90(rotate90(image, 1), 1).data);
  });

  it('jigsaw cuts row-major tiles from their cells, jittered within the gap', () => {
    const image = card(30, 30);
    const tiles = jigsawTiles(image, { grid: 3, tileSize: 10, gap: 0, jitter: 0 }, createRng(0));
    expect(tiles).toHaveLength(9);
    expect(tiles[5].data).toEqual(centerCropAt(image, 20, 10, 10).data);
    const jittered = jigsawTiles(image, { grid: 3, tileSize: 6, gap: 2, jitter: 2 }, createRng(0));
    expect(jittered.every((t) => t.width === 6 && t.height === 6)).toBe(true);
    expect(() => jigsawTiles(image, { grid: 3, tileSize: 6, gap: 6, jitter: 4 }, createRng(0))).toThrow(
      /too small for gap 6 \+ jitter 4/,
    );
  });
});

function centerCropAt(image: RawImage, left: number, top: number, size: number): FloatImage {
  return resampleBox(image, left, top, size, size, size, size);
}

describe('colour ops', () => {
  it('hue rotation by a third of a turn maps red to green; grayscale and saturation ignore 1 channel', () => {
    const red: FloatImage = { data: Float32Array.from([1, 0, 0]), width: 1, height: 1, channels: 3 };
    adjustHue(red, 1 / 3);
    expect(Array.from(red.data).map((v) => Math.round(v * 1000) / 1000)).toEqual([0, 1, 0]);
    const gray: FloatImage = { data: Float32Array.from([0.2, 0.7]), width: 2, height: 1, channels: 1 };
    toGrayscale(gray);
    adjustHue(gray, 0.3);
    expect(Array.from(gray.data)).toEqual([Math.fround(0.2), Math.fround(0.7)]);
  });

  it('grayscale sets all channels to the luma; solarize inverts above the threshold', () => {
    const image: FloatImage = { data: Float32Array.from([1, 0, 0, 0.2, 0.8, 0.6]), width: 2, height: 1, channels: 3 };
    toGrayscale(image);
    expect(image.data[0]).toBeCloseTo(0.2989, 4);
    expect(image.data[1]).toBe(image.data[0]);
    solarize(image, 0.5);
    const luma2 = 0.2989 * 0.2 + 0.587 * 0.8 + 0.114 * 0.6;
    expect(image.data[3]).toBeCloseTo(1 - luma2, 5);
  });

  it('color jitter keeps values in [0, 1], draws only from the rng, and brightness alone scales', () => {
    const base = toFloatImage(card(16, 16));
    const run = (seed: number) => {
      const img = { ...base, data: Float32Array.from(base.data) };
      colorJitter(img, { brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.1 }, createRng(seed));
      return img.data;
    };
    expect(run(1)).toEqual(run(1));
    expect(run(1)).not.toEqual(run(2));
    for (const v of run(3)) expect(v >= 0 && v <= 1).toBe(true);
    // The values: the four adjustments applied one by one in the drawn order with the drawn factors.
    for (const seed of [1, 2, 3]) {
      const strengths = { brightness: 0.4, contrast: 0.4, saturation: 0.4, hue: 0.1 };
      const draw = drawColorJitter(strengths, createRng(seed));
      const expected = { ...base, data: Float32Array.from(base.data) };
      for (const which of draw.order) {
        if (which === 0) adjustBrightness(expected, draw.brightness as number);
        if (which === 1) adjustContrast(expected, draw.contrast as number);
        if (which === 2) adjustSaturation(expected, draw.saturation as number);
        if (which === 3) adjustHue(expected, draw.hue as number);
      }
      expect(Array.from(run(seed))).toEqual(Array.from(expected.data));
      // The drawn factors lie in [1 - s, 1 + s].
      expect(draw.contrast).toBeGreaterThanOrEqual(0.6);
      expect(draw.contrast).toBeLessThanOrEqual(1.4);
    }
    // Brightness only: every value is scaled by one factor (until clamped).
    const img = { ...base, data: Float32Array.from(base.data) };
    colorJitter(img, { brightness: 0.5, contrast: 0, saturation: 0, hue: 0 }, createRng(9));
    const factor = img.data[3 * 7 + 0] / base.data[3 * 7 + 0];
    expect(factor).toBeGreaterThanOrEqual(0.5);
    expect(factor).toBeLessThanOrEqual(1.5);
    for (let i = 0; i < base.data.length; i++) expect(img.data[i]).toBeCloseTo(Math.min(1, base.data[i] * factor), 5);
  });

  it('gaussian blur keeps a constant image and spreads an impulse with weights summing to 1', () => {
    const data = new Float32Array(15 * 15);
    data[7 * 15 + 7] = 1;
    const out = gaussianBlur({ data, width: 15, height: 15, channels: 1 }, 1.5, 7);
    const sum = out.data.reduce((a, b) => a + b, 0);
    expect(sum).toBeCloseTo(1, 5);
    expect(out.data[7 * 15 + 8]).toBeCloseTo(out.data[7 * 15 + 6], 6);
    // The values: an impulse becomes the outer product of the normalised 1-D Gaussian
    // exp(-x^2 / (2 sigma^2)), x = -3..3, with itself.
    const taps = [-3, -2, -1, 0, 1, 2, 3].map((x) => Math.exp(-(x * x) / (2 * 1.5 * 1.5)));
    const total = taps.reduce((a, b) => a + b, 0);
    const kernel = taps.map((t) => t / total);
    for (let dy = -3; dy <= 3; dy++) {
      for (let dx = -3; dx <= 3; dx++) {
        expect(out.data[(7 + dy) * 15 + 7 + dx]).toBeCloseTo(kernel[dy + 3] * kernel[dx + 3], 6);
      }
    }
    expect(out.data[0]).toBe(0); // beyond the kernel's reach
  });
});

describe('pipelines', () => {
  it('randomErasing fills one rectangle (area in scale, inside the image) with the value; p 0 is the identity', () => {
    const raw = card(20, 16);
    const original = runPipeline(raw, [{ op: 'centerCrop', size: 16 }], createRng(1)).data;
    for (let seed = 0; seed < 20; seed++) {
      const step = { op: 'randomErasing' as const, p: 1, scale: [0.05, 0.2] as [number, number], value: 0.25 };
      const out = runPipeline(raw, [{ op: 'centerCrop', size: 16 }, step], createRng(seed)).data;
      // The box the same stream draws (the crop draws nothing, the chance draw comes first).
      const rng = createRng(seed);
      rng.chance(1);
      const box = sampleBox(16, 16, [0.05, 0.2], [0.3, 3.3], rng);
      expect(box).not.toBeNull();
      const { top, left, height: h, width: w } = box!;
      expect(top + h).toBeLessThanOrEqual(16);
      expect(left + w).toBeLessThanOrEqual(16);
      let erased = 0;
      for (let y = 0; y < 16; y++) {
        for (let x = 0; x < 16; x++) {
          const inside = y >= top && y < top + h && x >= left && x < left + w;
          for (let c = 0; c < 3; c++) {
            const i = (y * 16 + x) * 3 + c;
            if (inside) expect(out[i]).toBe(0.25);
            else expect(out[i]).toBe(original[i]);
          }
          if (inside) erased++;
        }
      }
      // Rounding the sides moves the area a little outside the drawn fraction.
      expect(erased / 256).toBeGreaterThan(0.03);
      expect(erased / 256).toBeLessThan(0.25);
    }
    const kept = runPipeline(
      raw,
      [
        { op: 'centerCrop', size: 16 },
        { op: 'randomErasing', p: 0 },
      ],
      createRng(3),
    ).data;
    expect(Array.from(kept)).toEqual(Array.from(original));
    expect(() =>
      validatePipeline(
        [
          { op: 'centerCrop', size: 8 },
          { op: 'randomErasing', value: 2 },
        ],
        3,
      ),
    ).toThrow('Expected a number between 0 and 1 for pipeline[1].value but received 2 (number)');
  });

  it('rejects bad steps with errors naming the step and key', () => {
    expect(() => validatePipeline([{ op: 'flip' }], 3, 'views[0]')).toThrow(
      'Expected one of "resize", "centerCrop", "randomResizedCrop", "randomCrop", "horizontalFlip", "verticalFlip", "colorJitter", "randomGrayscale", "gaussianBlur", "solarize", "randomErasing", "randomAffine", "rotate90", "jigsaw", "normalize" for views[0][0].op but received "flip" (string)',
    );
    expect(() =>
      validatePipeline(
        [
          { op: 'horizontalFlip', p: 2 },
          { op: 'centerCrop', size: 8 },
        ],
        3,
      ),
    ).toThrow('Expected a number between 0 and 1 for pipeline[0].p but received 2 (number)');
    expect(() => validatePipeline([{ op: 'randomResizedCrop', size: 8, scale: [0.9, 0.1] }], 3)).toThrow(
      'Expected [low, high] with 0.000001 <= low <= high <= 1 for pipeline[0].scale but received [0.9,0.1] (array)',
    );
    expect(() => validatePipeline([{ op: 'randomCrop', size: 32, padding: -4 }], 3, 'augment.train')).toThrow(
      'Expected an integer between 0 and 4096 for augment.train[0].padding but received -4 (number)',
    );
    expect(() => validatePipeline([{ op: 'randomCrop', size: 32, padding: 4, fill: 255 }], 3)).toThrow(
      'Expected a number between 0 and 1 for pipeline[0].fill but received 255 (number)',
    );
    expect(() => validatePipeline([{ op: 'randomCrop', padding: 4 }], 3)).toThrow(
      'Expected an integer between 1 and 8192 for pipeline[0].size but received undefined',
    );
    expect(() => validatePipeline([{ op: 'randomCrop', size: 32, pad: 4 }], 3)).toThrow(
      'Unknown key pipeline[0].pad for op "randomCrop" (allowed: size, padding, fill) with value 4 (number)',
    );
    expect(() => validatePipeline([{ op: 'centerCrop', size: 8, colour: 1 }], 3)).toThrow(
      'Unknown key pipeline[0].colour for op "centerCrop" (allowed: size) with value 1 (number)',
    );
    expect(() =>
      validatePipeline(
        [
          { op: 'centerCrop', size: 8 },
          { op: 'normalize', mean: [0.5, 0.5], std: [1] },
        ],
        3,
      ),
    ).toThrow(
      'Expected an array of 1 or 3 numbers (one per channel) for pipeline[1].mean but received [0.5,0.5] (array)',
    );
    expect(() => validatePipeline([{ op: 'resize', size: 8 }], 3)).toThrow(/output size is not fixed/);
    expect(() =>
      validatePipeline(
        [
          { op: 'normalize', mean: [0], std: [1] },
          { op: 'centerCrop', size: 8 },
        ],
        1,
      ),
    ).toThrow('pipeline[0]: normalize must be the last step (it is step 0 of 2)');
  });

  it('reports the output shape: [H, W, C], or [T, h, w, C] after jigsaw', () => {
    expect(validatePipeline(SIMCLR_PIPELINE(32, 3), 3)).toEqual([32, 32, 3]);
    expect(validatePipeline(SIMCLR_PIPELINE(96, 1), 1)).toEqual([96, 96, 1]);
    expect(validatePipeline(JIGSAW_PIPELINE(96, 24, 3), 3)).toEqual([9, 24, 24, 3]);
    // The CIFAR view: a random crop fixes the size, even after a resize that keeps the aspect ratio.
    expect(
      validatePipeline(
        [{ op: 'resize', size: 32 }, { op: 'randomCrop', size: 32, padding: 4 }, { op: 'horizontalFlip' }],
        3,
      ),
    ).toEqual([32, 32, 3]);
    expect(SIMCLR_PIPELINE(32).some((s) => s.op === 'gaussianBlur')).toBe(false);
    expect(SIMCLR_PIPELINE(96).some((s) => s.op === 'gaussianBlur')).toBe(true);
  });

  it('same stream -> identical pixels, different stream -> different; output matches the reported shape', () => {
    const image = card(50, 40);
    for (const spec of [SIMCLR_PIPELINE(32, 3), SIMCLR_PIPELINE(96, 3), JIGSAW_PIPELINE(60, 16, 3)]) {
      const shape = validatePipeline(spec, 3);
      const a = runPipeline(image, spec, createRng('s').derive('sample', 1));
      const b = runPipeline(image, spec, createRng('s').derive('sample', 1));
      const c = runPipeline(image, spec, createRng('s').derive('sample', 2));
      expect(a.shape).toEqual(shape);
      expect(a.data.length).toBe(shape.reduce((x, y) => x * y, 1));
      expect(a.data).toEqual(b.data);
      expect(a.data).not.toEqual(c.data);
    }
    // The decoded image is never modified by a pipeline.
    expect(Buffer.from(image.data).equals(testCard(50, 40))).toBe(true);
  });

  it('normalize gives (x/255 - mean) / std', () => {
    const image: RawImage = { data: Uint8Array.from([255, 0, 51, 102]), width: 2, height: 2, channels: 1 };
    const out = runPipeline(
      image,
      [
        { op: 'centerCrop', size: 2 },
        { op: 'normalize', mean: [0.5], std: [0.25] },
      ],
      createRng(0),
    );
    [2, -2, -1.2, -0.4].forEach((v, i) => {
      expect(out.data[i]).toBeCloseTo(v, 5);
    });
  });
});
