/**
 * The unlabelled noise images of the pretraining-loop tests: `count` images of
 * side x side px with uniform random bytes, a little larger than the recipes'
 * inputs so crops and resizes do real work. No labels, so no online probe.
 */
import type { ImageSource, RawImage } from '../../src/data/types.js';
import { createRng } from '../../src/util/rng.js';

export function noiseSource(count: number, side: number, channels: 1 | 3 = 1, seed = 1): ImageSource {
  const rng = createRng(seed);
  const images: RawImage[] = Array.from({ length: count }, () => {
    const data = new Uint8Array(side * side * channels);
    for (let i = 0; i < data.length; i++) data[i] = rng.int(256);
    return { data, width: side, height: side, channels };
  });
  return { size: count, load: async (index) => images[index], describe: (index) => `noise#${index}` };
}
