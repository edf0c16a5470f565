/**
 * Generated, separable image data for finetuning tests: 12x12 grayscale
 * textures with a random phase and noise; class 0 horizontal stripes, 1 vertical
 * stripes, 2 a checkerboard, 3 a smooth bright blob. Pooled conv features separate them.
 */
import { type ImageSet, imageSetFromArrays } from '../../src/finetune/image-set.js';
import { createRng } from '../../src/util/rng.js';

export const SIZE = 12;
export const CLASSES = ['horizontal', 'vertical', 'checker', 'blob'];

export function quadrantSet(count: number, seed: number, classOf: (i: number) => number = (i) => i % 4): ImageSet {
  const rng = createRng(seed);
  const plane = SIZE * SIZE;
  const pixels = new Float32Array(count * plane);
  const labels = new Int32Array(count);
  for (let i = 0; i < count; i++) {
    const k = classOf(i);
    labels[i] = k;
    const phase = rng.int(2);
    const cy = 3 + rng.int(6);
    const cx = 3 + rng.int(6);
    for (let y = 0; y < SIZE; y++) {
      for (let x = 0; x < SIZE; x++) {
        let v: number;
        if (k === 0) v = (y + phase) % 2;
        else if (k === 1) v = (x + phase) % 2;
        else if (k === 2) v = (x + y + phase) % 2;
        else v = Math.exp(-((y - cy) ** 2 + (x - cx) ** 2) / 8);
        pixels[i * plane + y * SIZE + x] = 0.1 + 0.7 * v + 0.2 * rng.next();
      }
    }
  }
  return imageSetFromArrays(pixels, [count, SIZE, SIZE, 1], labels, CLASSES.slice(), (i) => `synthetic#${i}`);
}

export const INPUT = { size: SIZE, channels: 1 as const, mean: [0.3], std: [0.3] };
