#!/usr/bin/env node
/**
 * Builds data/fashion-mnist-demo/ from the Fashion-MNIST IDX files (MIT licence,
 * Zalando Research), e.g. Debian's dataset-fashion-mnist package:
 *
 *   node scripts/make-demo-data.mjs /usr/share/datasets/fashion-mnist
 *
 * Deterministic: a fixed seed picks the images. Layout:
 *   unlabeled/part-{0..3}/NNNNN.png   2,000 training images, no labels (+ 2 broken files)
 *   labeled/<class>/NNNNN.png         50 per class from the training set (disjoint from unlabeled)
 *   test/<class>/NNNNN.png            100 per class from the test set
 *   idx/                              1,000 training + 500 test images as gzipped IDX files
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import seedrandom from 'seedrandom';
import sharp from 'sharp';
import { idxBytes, readIdx } from './idx-files.mjs';

const CLASSES = ['t-shirt', 'trouser', 'pullover', 'dress', 'coat', 'sandal', 'shirt', 'sneaker', 'bag', 'ankle-boot'];
const src = process.argv[2] ?? '/usr/share/datasets/fashion-mnist';
const out = path.resolve(process.argv[3] ?? 'data/fashion-mnist-demo');

const train = {
  images: readIdx(path.join(src, 'train-images-idx3-ubyte.gz')),
  labels: readIdx(path.join(src, 'train-labels-idx1-ubyte.gz')),
};
const test = {
  images: readIdx(path.join(src, 't10k-images-idx3-ubyte.gz')),
  labels: readIdx(path.join(src, 't10k-labels-idx1-ubyte.gz')),
};
const rng = seedrandom('selfsup-demo-v1');
const order = (n) => {
  const p = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [p[i], p[j]] = [p[j], p[i]];
  }
  return p;
};
const pixels = (set, i) => set.images.data.subarray(i * 784, (i + 1) * 784);
const png = (set, i) =>
  sharp(Buffer.from(pixels(set, i)), { raw: { width: 28, height: 28, channels: 1 } })
    .png({ compressionLevel: 9 })
    .toBuffer();

rmSync(out, { recursive: true, force: true });
const trainOrder = order(train.labels.shape[0]);
const perClass = new Array(10).fill(0);
const labeled = [];
const rest = [];
for (const i of trainOrder) {
  const c = train.labels.data[i];
  if (perClass[c] < 50) {
    perClass[c]++;
    labeled.push(i);
  } else rest.push(i);
}
for (const i of labeled) {
  const dir = path.join(out, 'labeled', CLASSES[train.labels.data[i]]);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, `${String(i).padStart(5, '0')}.png`), await png(train, i));
}
const unlabeled = rest.slice(0, 2000);
for (const [k, i] of unlabeled.entries()) {
  const dir = path.join(out, 'unlabeled', `part-${k % 4}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, `${String(i).padStart(5, '0')}.png`), await png(train, i));
}
// A real dump has broken files: one empty, one cut short.
const broken = path.join(out, 'unlabeled', 'part-0');
writeFileSync(path.join(broken, 'broken-empty.png'), Buffer.alloc(0));
const whole = await png(train, unlabeled[0]);
writeFileSync(path.join(broken, 'broken-truncated.png'), whole.subarray(0, Math.floor(whole.length / 2)));

const testOrder = order(test.labels.shape[0]);
const testPerClass = new Array(10).fill(0);
for (const i of testOrder) {
  const c = test.labels.data[i];
  if (testPerClass[c] >= 100) continue;
  testPerClass[c]++;
  const dir = path.join(out, 'test', CLASSES[c]);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, `${String(i).padStart(5, '0')}.png`), await png(test, i));
}

mkdirSync(path.join(out, 'idx'), { recursive: true });
const idxTrain = rest.slice(2000, 3000);
const idxTest = testOrder.slice(0, 500);
const gather = (set, ids) => Buffer.concat(ids.map((i) => pixels(set, i)));
writeFileSync(
  path.join(out, 'idx', 'train-images-idx3-ubyte.gz'),
  idxBytes([idxTrain.length, 28, 28], gather(train, idxTrain)),
);
writeFileSync(
  path.join(out, 'idx', 'train-labels-idx1-ubyte.gz'),
  idxBytes([idxTrain.length], Buffer.from(idxTrain.map((i) => train.labels.data[i]))),
);
writeFileSync(
  path.join(out, 'idx', 't10k-images-idx3-ubyte.gz'),
  idxBytes([idxTest.length, 28, 28], gather(test, idxTest)),
);
writeFileSync(
  path.join(out, 'idx', 't10k-labels-idx1-ubyte.gz'),
  idxBytes([idxTest.length], Buffer.from(idxTest.map((i) => test.labels.data[i]))),
);
writeFileSync(path.join(out, 'classes.txt'), `${CLASSES.join('\n')}\n`);
console.log(
  `wrote ${out}: ${labeled.length} labeled, ${unlabeled.length} unlabeled (+2 broken), 1000 test, idx 1000+500`,
);
