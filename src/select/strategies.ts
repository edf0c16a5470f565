/**
 * Which images of an unlabeled pool to label next, as a pure function of their
 * embeddings (and, for some strategies, a classifier's probabilities):
 *
 * - `random`: a seeded random order, the baseline every other strategy must beat;
 * - `diversity`: k-center greedy, the core-set rule of Sener & Savarese (2018): "choose
 *   b center points such that the largest distance between a data point and its nearest
 *   center is minimized" — each pick is the image farthest from everything picked or
 *   already labeled;
 * - `typical`: the pool is split into `budget` clusters (spherical k-means) and the most
 *   typical image of each (the closest to its centre) is taken, largest clusters first:
 *   representative and spread out, after TypiClust (Hacohen et al. 2022): "select
 *   typical examples ... from different clusters" in the low-budget regime, where
 *   k-center's outliers and uncertain images are poor first labels;
 * - `uncertainty`: the classifier's least certain images first (margin, entropy or
 *   least confidence);
 * - `hybrid`: the pool is split into `budget` clusters (spherical k-means) and the most
 *   uncertain image of each cluster is taken, so uncertain picks are spread out;
 * - `balanced`: picks go round-robin to the predicted class with the fewest labels so
 *   far (labeled set + picks), its most probable members first, so rare classes get labels.
 *
 * Every strategy refuses near-duplicates: an image whose cosine similarity to an image
 * already picked or labeled reaches `duplicateThreshold` is never picked.
 */
import * as tf from '@tensorflow/tfjs';
import { assertInteger, assertNumber, assertOneOf, UsageError } from '../util/errors.js';
import { createRng, type Rng } from '../util/rng.js';
import { CoverageTracker, type EmbeddingMatrix, nearestAmong, type UnitSpace, unitSpace } from './geometry.js';
import {
  checkProbabilities,
  type ProbabilityMatrix,
  predictions,
  UNCERTAINTY_MEASURES,
  type UncertaintyMeasure,
  uncertaintyScores,
} from './scores.js';

export const SELECTION_STRATEGIES = ['random', 'diversity', 'typical', 'uncertainty', 'hybrid', 'balanced'] as const;
export type SelectionStrategy = (typeof SELECTION_STRATEGIES)[number];

/** Strategies that need a classifier's probabilities. */
export const CLASSIFIER_STRATEGIES: readonly SelectionStrategy[] = ['uncertainty', 'hybrid', 'balanced'];

export interface SelectionInput {
  /** [N, D] embeddings of the pool. */
  embeddings: EmbeddingMatrix;
  /** [L, D] embeddings of the images already labeled (never picked again, nor their near-duplicates). */
  labeled?: EmbeddingMatrix;
  /** [L] class index of each labeled image, in the classifier's classes (for `balanced`). */
  labeledClasses?: Int32Array;
  /** [N, C] a classifier's probabilities for the pool (for uncertainty, hybrid, balanced). */
  probabilities?: ProbabilityMatrix;
  /** Pool rows that must not be picked (e.g. the same files as labeled images). */
  exclude?: Iterable<number>;
}

export interface SelectionOptions {
  /** How many images to pick, >= 1. */
  budget: number;
  strategy: SelectionStrategy;
  /** Uncertainty measure for uncertainty and hybrid. Default `margin`. */
  measure?: UncertaintyMeasure;
  /** Seed of every random choice (random order, first k-center pick, k-means start, ties). Default 0. */
  seed?: number | string;
  /** Cosine similarity at or above which an image counts as a near-duplicate, in (0, 1]. Default 0.98. */
  duplicateThreshold?: number;
  /** Subtract the pool's mean embedding before comparing. Default true. */
  center?: boolean;
  /** k-means iterations of `hybrid` and `typical`, 1..100. Default 10. */
  clusterIterations?: number;
  /** Called as picks are made. */
  onProgress?: (done: number, total: number) => void;
}

export interface Pick {
  /** Pool row. */
  row: number;
  /** 1 = first pick. */
  rank: number;
  /**
   * The strategy's score when the image was picked: the cosine distance to the nearest
   * picked or labeled image (diversity), the uncertainty (uncertainty, hybrid), the
   * predicted class's probability (balanced), the cosine similarity to its cluster's
   * centre (typical), or a uniform draw (random).
   */
  score: number;
  /** Cluster of `hybrid` and `typical`, -1 otherwise. */
  cluster: number;
}

export interface SelectionResult {
  strategy: SelectionStrategy;
  picks: Pick[];
  /** Candidates passed over because they were near-duplicates of a picked or labeled image. */
  skippedDuplicates: number;
  /** Pool rows that could be picked at all (not excluded). */
  eligible: number;
  /** For each pick (same order): the nearest labeled image's row in `labeled` and its cosine distance (-1 / NaN: none). */
  nearestLabeled: { row: Int32Array; distance: Float32Array };
}

interface Resolved {
  budget: number;
  strategy: SelectionStrategy;
  measure: UncertaintyMeasure;
  rng: Rng;
  duplicateThreshold: number;
  center: boolean;
  clusterIterations: number;
}

function resolve(options: SelectionOptions): Resolved {
  return {
    budget: assertInteger('budget', options.budget, 1, 10_000_000),
    strategy: assertOneOf('strategy', options.strategy, SELECTION_STRATEGIES),
    measure: assertOneOf('measure', options.measure ?? 'margin', UNCERTAINTY_MEASURES),
    rng: createRng(options.seed ?? 0).derive('select', options.strategy),
    duplicateThreshold: assertNumber('duplicateThreshold', options.duplicateThreshold ?? 0.98, 1e-6, 1),
    center: options.center ?? true,
    clusterIterations: assertInteger('clusterIterations', options.clusterIterations ?? 10, 1, 100),
  };
}

/** Greedy state shared by every strategy: coverage by picked/labeled images, exclusions, the pick list. */
class Picker {
  readonly picks: Pick[] = [];
  skippedDuplicates = 0;
  private readonly taken: Uint8Array;
  readonly coverage: CoverageTracker;

  constructor(
    space: UnitSpace,
    private readonly settings: Resolved,
    excluded: Uint8Array,
    private readonly onProgress?: (done: number, total: number) => void,
  ) {
    this.coverage = new CoverageTracker(space);
    this.taken = excluded.slice();
  }

  get full(): boolean {
    return this.picks.length >= this.settings.budget;
  }

  /** True when `row` may still be picked: not excluded, not picked, not a near-duplicate. */
  available(row: number): boolean {
    return this.taken[row] === 0 && this.coverage.maxSimilarity[row] < this.settings.duplicateThreshold;
  }

  /** Tries to pick `row`; returns false (and counts it) when it is a near-duplicate. */
  offer(row: number, score: number, cluster = -1): boolean {
    if (this.full || this.taken[row] !== 0) return false;
    if (this.coverage.maxSimilarity[row] >= this.settings.duplicateThreshold) {
      this.taken[row] = 1;
      this.skippedDuplicates++;
      return false;
    }
    this.taken[row] = 1;
    this.picks.push({ row, rank: this.picks.length + 1, score, cluster });
    this.coverage.add(row);
    this.onProgress?.(this.picks.length, this.settings.budget);
    return true;
  }

  /** Offers rows in the given order until the budget is full. */
  offerInOrder(order: ArrayLike<number>, score: (row: number) => number, cluster?: (row: number) => number): void {
    for (let i = 0; i < order.length && !this.full; i++) {
      const row = order[i];
      this.offer(row, score(row), cluster ? cluster(row) : -1);
    }
  }
}

/** Rows sorted by descending score; ties broken by a seeded random order. */
function orderByScore(scores: Float32Array, rng: Rng): Int32Array {
  const tiebreak = rng.derive('ties').permutation(scores.length);
  const rank = new Int32Array(scores.length);
  for (let i = 0; i < tiebreak.length; i++) rank[tiebreak[i]] = i;
  const order = Int32Array.from({ length: scores.length }, (_, i) => i);
  order.sort((a, b) => scores[b] - scores[a] || rank[a] - rank[b]);
  return order;
}

function selectDiversity(picker: Picker, rng: Rng, count: number): void {
  const max = picker.coverage.maxSimilarity;
  const firstRng = rng.derive('first');
  while (!picker.full) {
    let best = -1;
    let bestSimilarity = Infinity;
    for (let i = 0; i < count; i++) {
      if (picker.available(i) && max[i] < bestSimilarity) {
        bestSimilarity = max[i];
        best = i;
      }
    }
    if (best < 0) return;
    if (bestSimilarity === -Infinity) {
      // Nothing picked or labeled yet: start from a seeded random eligible image.
      const candidates: number[] = [];
      for (let i = 0; i < count; i++) if (picker.available(i)) candidates.push(i);
      best = candidates[firstRng.int(candidates.length)];
      picker.offer(best, 2);
    } else {
      picker.offer(best, 1 - bestSimilarity);
    }
  }
}

/**
 * Spherical k-means on unit rows: k-means++ seeding (seeded), then `iterations`
 * rounds of assignment and re-centring. Returns each row's cluster and its cosine
 * similarity to that cluster's centre (how typical the row is of its cluster).
 */
export function sphericalKMeans(
  points: tf.Tensor2D,
  k: number,
  iterations: number,
  rng: Rng,
): { assignment: Int32Array; similarity: Float32Array } {
  const n = points.shape[0];
  const dim = points.shape[1];
  if (k < 1 || k > n) throw new UsageError(`sphericalKMeans: k must be in 1..${n}, received ${k}`);
  // k-means++: the next centre is drawn with probability proportional to its squared distance (2 - 2 cos).
  const seeds: number[] = [rng.int(n)];
  const best = new Float32Array(n).fill(-Infinity);
  const updateBest = (row: number) => {
    const sims = tf.tidy(() => tf.reshape(tf.matMul(points, tf.slice(points, [row, 0], [1, -1]), false, true), [-1]));
    const values = sims.dataSync() as Float32Array;
    sims.dispose();
    for (let i = 0; i < n; i++) if (values[i] > best[i]) best[i] = values[i];
  };
  updateBest(seeds[0]);
  while (seeds.length < k) {
    let total = 0;
    for (let i = 0; i < n; i++) total += Math.max(0, 2 - 2 * best[i]);
    let target = rng.next() * total;
    let chosen = -1;
    for (let i = 0; i < n && total > 0; i++) {
      target -= Math.max(0, 2 - 2 * best[i]);
      if (target <= 0) {
        chosen = i;
        break;
      }
    }
    if (chosen < 0) chosen = rng.int(n);
    seeds.push(chosen);
    updateBest(chosen);
  }
  let centres: tf.Tensor2D = tf.tidy(() => tf.gather(points, seeds) as tf.Tensor2D);
  let assignment: Int32Array = new Int32Array(n);
  let similarity: Float32Array = new Float32Array(n);
  for (let iteration = 0; iteration <= iterations; iteration++) {
    ({ index: assignment, similarity } = nearestAmong(points, centres));
    if (iteration === iterations) break;
    const next = tf.tidy(() => {
      const sums = tf.unsortedSegmentSum(points, tf.tensor1d(assignment, 'int32'), k); // [k, D]
      const norms = tf.norm(sums, 'euclidean', 1, true);
      // An empty cluster keeps its old centre.
      const empty = tf.lessEqual(norms, 1e-12);
      return tf.where(tf.tile(empty, [1, dim]), centres, tf.div(sums, tf.maximum(norms, 1e-12))) as tf.Tensor2D;
    });
    centres.dispose();
    centres = next;
  }
  centres.dispose();
  return { assignment, similarity };
}

/** The eligible rows in min(budget, rows) spherical k-means clusters, and each row's similarity to its centre (by pool row). */
function clusterEligible(
  space: UnitSpace,
  settings: Resolved,
  eligibleRows: Int32Array,
): { members: number[][]; similarity: Float32Array } {
  const k = Math.min(settings.budget, eligibleRows.length);
  const points = tf.tidy(() => tf.gather(space.pool, eligibleRows) as tf.Tensor2D);
  let clusters: ReturnType<typeof sphericalKMeans>;
  try {
    clusters = sphericalKMeans(points, k, settings.clusterIterations, settings.rng.derive('kmeans'));
  } finally {
    points.dispose();
  }
  const members: number[][] = Array.from({ length: k }, () => []);
  const similarity = new Float32Array(space.pool.shape[0]);
  for (let i = 0; i < eligibleRows.length; i++) {
    members[clusters.assignment[i]].push(eligibleRows[i]);
    similarity[eligibleRows[i]] = clusters.similarity[i];
  }
  return { members, similarity };
}

interface RankedCluster {
  id: number;
  /** Pool rows, best first. */
  list: number[];
}

/**
 * Offers cluster members round by round: each cluster's members sorted by `score`
 * (highest first), the non-empty clusters in the order `compare` gives; round r
 * offers the r-th best member of every cluster, until the picker is full or no
 * cluster has an r-th member.
 */
function offerByCluster(
  picker: Picker,
  members: number[][],
  score: Float32Array,
  compare: (a: RankedCluster, b: RankedCluster) => number,
): void {
  for (const list of members) list.sort((a, b) => score[b] - score[a] || a - b);
  const clusters = members
    .map((list, id) => ({ id, list }))
    .filter((c) => c.list.length > 0)
    .sort(compare);
  for (let round = 0; !picker.full; round++) {
    let offered = false;
    for (const c of clusters) {
      if (round < c.list.length) {
        offered = true;
        const row = c.list[round];
        picker.offer(row, score[row], c.id);
        if (picker.full) return;
      }
    }
    if (!offered) return;
  }
}

/** Round r offers the r-th most typical member (nearest its centre) of every cluster, largest clusters first. */
function selectTypical(picker: Picker, space: UnitSpace, settings: Resolved, eligibleRows: Int32Array): void {
  const { members, similarity } = clusterEligible(space, settings, eligibleRows);
  offerByCluster(picker, members, similarity, (a, b) => b.list.length - a.list.length || a.id - b.id);
}

/** Round r offers the r-th most uncertain member of every cluster, most uncertain clusters first. */
function selectHybrid(
  picker: Picker,
  space: UnitSpace,
  uncertainty: Float32Array,
  settings: Resolved,
  eligibleRows: Int32Array,
): void {
  const { members } = clusterEligible(space, settings, eligibleRows);
  offerByCluster(
    picker,
    members,
    uncertainty,
    (a, b) => uncertainty[b.list[0]] - uncertainty[a.list[0]] || a.id - b.id,
  );
}

function selectBalanced(
  picker: Picker,
  probabilities: ProbabilityMatrix,
  labeledClasses: Int32Array | undefined,
  eligibleRows: Int32Array,
): void {
  const { label, probability } = predictions(probabilities);
  const numClasses = probabilities.numClasses;
  const counts = new Float64Array(numClasses);
  for (const c of labeledClasses ?? []) if (c >= 0 && c < numClasses) counts[c]++;
  const queues: number[][] = Array.from({ length: numClasses }, () => []);
  for (const row of eligibleRows) queues[label[row]].push(row);
  for (const q of queues) q.sort((a, b) => probability[b] - probability[a] || a - b);
  const next = new Int32Array(numClasses);
  while (!picker.full) {
    // The class with the fewest labels so far that still has candidates.
    let chosen = -1;
    for (let c = 0; c < numClasses; c++) {
      while (next[c] < queues[c].length && !picker.available(queues[c][next[c]])) {
        picker.offer(queues[c][next[c]], probability[queues[c][next[c]]]); // counts a near-duplicate
        next[c]++;
      }
      if (next[c] >= queues[c].length) continue;
      if (chosen < 0 || counts[c] < counts[chosen]) chosen = c;
    }
    if (chosen < 0) return;
    const row = queues[chosen][next[chosen]++];
    if (picker.offer(row, probability[row])) counts[chosen]++;
  }
}

/**
 * Picks `options.budget` pool rows with the chosen strategy. Leaves no tensors behind.
 * Fewer rows come back when the pool runs out of images that are neither excluded nor
 * near-duplicates.
 */
export function selectFromPool(input: SelectionInput, options: SelectionOptions): SelectionResult {
  const settings = resolve(options);
  const count = input.embeddings.count;
  if (CLASSIFIER_STRATEGIES.includes(settings.strategy) && !input.probabilities) {
    throw new UsageError(
      `strategy "${settings.strategy}" needs a classifier's probabilities: give a finetuned model folder (selfsup finetune) as the model, or use "diversity" or "random"`,
    );
  }
  if (input.probabilities) {
    checkProbabilities(input.probabilities);
    if (input.probabilities.count !== count) {
      throw new UsageError(`probabilities have ${input.probabilities.count} rows but the pool has ${count} images`);
    }
  }
  const excluded = new Uint8Array(count);
  for (const row of input.exclude ?? []) if (row >= 0 && row < count) excluded[row] = 1;
  const eligibleRows = Int32Array.from(
    (function* () {
      for (let i = 0; i < count; i++) if (!excluded[i]) yield i;
    })(),
  );
  const space = unitSpace(input.embeddings, input.labeled, settings.center);
  try {
    const picker = new Picker(space, settings, excluded, options.onProgress);
    const uncertainty = input.probabilities ? uncertaintyScores(input.probabilities, settings.measure) : undefined;
    switch (settings.strategy) {
      case 'random': {
        const draws = settings.rng.derive('order');
        const order = draws.permutation(count);
        picker.offerInOrder(order, () => draws.next());
        break;
      }
      case 'diversity':
        selectDiversity(picker, settings.rng, count);
        break;
      case 'typical':
        if (eligibleRows.length > 0) selectTypical(picker, space, settings, eligibleRows);
        break;
      case 'uncertainty': {
        const scores = uncertainty as Float32Array;
        picker.offerInOrder(orderByScore(scores, settings.rng), (row) => scores[row]);
        break;
      }
      case 'hybrid':
        if (eligibleRows.length > 0) selectHybrid(picker, space, uncertainty as Float32Array, settings, eligibleRows);
        break;
      case 'balanced':
        selectBalanced(picker, input.probabilities as ProbabilityMatrix, input.labeledClasses, eligibleRows);
        break;
    }
    const nearestLabeled = {
      row: new Int32Array(picker.picks.length).fill(-1),
      distance: new Float32Array(picker.picks.length).fill(Number.NaN),
    };
    if (space.labeled && picker.picks.length > 0) {
      const rows = picker.picks.map((p) => p.row);
      const picked = tf.tidy(() => tf.gather(space.pool, rows) as tf.Tensor2D);
      try {
        const nearest = nearestAmong(picked, space.labeled);
        nearestLabeled.row.set(nearest.index);
        for (let i = 0; i < rows.length; i++) nearestLabeled.distance[i] = 1 - nearest.similarity[i];
      } finally {
        picked.dispose();
      }
    }
    return {
      strategy: settings.strategy,
      picks: picker.picks,
      skippedDuplicates: picker.skippedDuplicates,
      eligible: eligibleRows.length,
      nearestLabeled,
    };
  } finally {
    space.dispose();
  }
}
