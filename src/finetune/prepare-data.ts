/**
 * The data of a finetuning job: the labeled images (with experiment subsets: N
 * per class, minority classes, flipped labels), the test images (a --test set, a
 * stratified holdout, or the training images), and unlabeled images for FixMatch.
 */
import { openImageSource } from '../data/open.js';
import type { InputSpec } from '../data/types.js';
import type { FinetuneRecipe } from '../recipes/finetune-schema.js';
import { UsageError } from '../util/errors.js';
import { createRng } from '../util/rng.js';
import { flipLabels, imbalancedSubset, perClassSubset, remapLabels, stratifiedHoldout } from './data.js';
import { type ImageSet, loadImageSet, withLabels } from './image-set.js';

export type { InputSpec };

/** Label subsets for experiments (all optional). */
export interface SubsetOptions {
  /** Keep N labeled images per class. */
  perClass?: number;
  /** Classes (indices) that keep only `minorityFactor` of their labels. */
  minorityClasses?: number[];
  minorityFactor?: number;
  /** Flip this fraction of the training labels to another class. */
  flipFraction?: number;
  /** Seed of the subset draws (default: the recipe seed). */
  seed?: number;
}

export interface PreparedData {
  train: ImageSet;
  test: ImageSet;
  /** Where the report's numbers come from. */
  testSource: 'test' | 'holdout' | 'train';
  unlabeled?: ImageSet;
  /** Per train position: 1 when the label was flipped on purpose. */
  flipped?: Uint8Array;
  skipped: Array<{ index: number; path: string; reason: string }>;
}

export interface DataSpec {
  labels: string;
  test?: string;
  unlabeled?: string;
  /** Use at most this many unlabeled images (a seeded sample). */
  unlabeledLimit?: number;
  /** Evaluate on a stratified seeded sample of at most this many test images. */
  testLimit?: number;
}

/**
 * Decodes the labeled, test and unlabeled data, and applies the experiment
 * subsets. Splits and subsets are drawn from the labels alone, so only the
 * images used are decoded.
 */
export async function prepareData(
  spec: DataSpec,
  input: InputSpec,
  recipe: FinetuneRecipe,
  subsets: SubsetOptions = {},
  options: { progress?: boolean; needUnlabeled?: boolean } = {},
): Promise<PreparedData> {
  const load = { size: input.size, channels: input.channels, progress: options.progress };
  const labeledSource = await openImageSource(spec.labels, { needLabels: true, split: 'train' });
  const sourceLabels = labeledSource.labels as Int32Array;
  const classNames = (labeledSource.classNames as string[]).slice();
  const numClasses = classNames.length;
  const rng = createRng(subsets.seed ?? recipe.seed).derive('subsets');
  let pool: Int32Array = Int32Array.from({ length: labeledSource.size }, (_, i) => i).filter(
    (i) => sourceLabels[i] >= 0,
  );
  let holdout: Int32Array | undefined;
  if (!spec.test && recipe.eval.holdout > 0) {
    const split = stratifiedHoldout(
      Int32Array.from(pool, (i) => sourceLabels[i]),
      numClasses,
      recipe.eval.holdout,
      rng.derive('holdout'),
    );
    holdout = Int32Array.from(split.test, (j) => pool[j]);
    pool = Int32Array.from(split.train, (j) => pool[j]);
  }
  let chosen: Int32Array = pool;
  if (subsets.perClass) {
    const sub = perClassSubset(
      Int32Array.from(pool, (i) => sourceLabels[i]),
      numClasses,
      subsets.perClass,
      rng.derive('per-class'),
    );
    chosen = Int32Array.from(sub, (j) => pool[j]);
  }
  if (subsets.minorityClasses?.length) {
    for (const c of subsets.minorityClasses) {
      if (c >= numClasses)
        throw new UsageError(`Expected class indices below ${numClasses} for --minority but received ${c}`);
    }
    chosen = imbalancedSubset(
      chosen,
      sourceLabels,
      subsets.minorityClasses,
      subsets.minorityFactor ?? 0.1,
      rng.derive('imbalance'),
    );
  }
  let train = await loadImageSet(labeledSource, { ...load, indices: chosen });
  const skipped = [...(train.skipped ?? [])];
  train.classNames = classNames;
  let test: ImageSet;
  let testSource: PreparedData['testSource'];
  if (spec.test) {
    const testImageSource = await openImageSource(spec.test, { needLabels: true, split: 't10k' });
    let testIndices: Int32Array | undefined;
    if (spec.testLimit && spec.testLimit < testImageSource.size) {
      const testLabels = testImageSource.labels as Int32Array;
      const k = Math.max(numClasses, Math.max(...testLabels) + 1);
      const split = stratifiedHoldout(testLabels, k, spec.testLimit / testImageSource.size, createRng('test-limit'));
      testIndices = split.test;
    }
    const testImages = await loadImageSet(testImageSource, { ...load, indices: testIndices });
    skipped.push(...(testImages.skipped ?? []));
    test = withLabels(testImages, remapLabels(testImages.labels, testImages.classNames, classNames, spec.test));
    test.classNames = classNames;
    testSource = 'test';
  } else if (holdout) {
    test = await loadImageSet(labeledSource, { ...load, indices: holdout });
    skipped.push(...(test.skipped ?? []));
    test.classNames = classNames;
    testSource = 'holdout';
  } else {
    test = train;
    testSource = 'train';
  }
  let flipped: Uint8Array | undefined;
  if (subsets.flipFraction) {
    const positions = Int32Array.from({ length: train.count }, (_, i) => i);
    const f = flipLabels(train.labels, positions, numClasses, subsets.flipFraction, rng.derive('flip'));
    train = withLabels(train, f.labels);
    flipped = f.flipped;
  }
  let unlabeled: ImageSet | undefined;
  if (spec.unlabeled) {
    const source = await openImageSource(spec.unlabeled, { split: 'train' });
    let indices: Int32Array | undefined;
    if (spec.unlabeledLimit && spec.unlabeledLimit < source.size) {
      indices = Int32Array.from(
        rng.derive('unlabeled').permutation(source.size).subarray(0, spec.unlabeledLimit),
      ).sort();
    }
    unlabeled = await loadImageSet(source, { ...load, indices });
    skipped.push(...(unlabeled.skipped ?? []));
    // Hidden labels of the same class set are kept to measure pseudo-label accuracy; others are dropped.
    if (unlabeled.classNames.join('\n') !== classNames.join('\n')) {
      unlabeled = withLabels(unlabeled, new Int32Array(unlabeled.count).fill(-1));
    }
  } else if (options.needUnlabeled) {
    throw new UsageError('the recipe enables fixmatch: pass --unlabeled <folder|idx> with the unlabeled images');
  }
  return { train, test, testSource, unlabeled, flipped, skipped };
}
