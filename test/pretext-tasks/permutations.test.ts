import { describe, expect, it } from 'vitest';
import { hammingDistance, maximalHammingPermutations, maxPermutationCount } from '../../pretext-tasks/permutations.js';

/** Smallest pairwise Hamming distance, by brute force over all pairs. */
function bruteForceMinDistance(permutations: number[][]): number {
  let min = Infinity;
  for (let a = 0; a < permutations.length; a++) {
    for (let b = a + 1; b < permutations.length; b++)
      min = Math.min(min, hammingDistance(permutations[a], permutations[b]));
  }
  return min;
}

function isPermutation(p: number[], n: number): boolean {
  return p.length === n && [...p].sort((a, b) => a - b).every((v, i) => v === i);
}

describe('maximal-Hamming permutation sets', () => {
  it('3x3: 100 distinct permutations whose min distance is as reported', () => {
    const set = maximalHammingPermutations(9, 100, 0);
    expect(set.permutations).toHaveLength(100);
    for (const p of set.permutations) expect(isPermutation(p, 9)).toBe(true);
    expect(new Set(set.permutations.map((p) => p.join(','))).size).toBe(100);
    expect(bruteForceMinDistance(set.permutations)).toBe(set.minHammingDistance);
    // Greedy max-min over 9! permutations keeps 100 of them far apart (a random set would have pairs at distance 2).
    expect(set.minHammingDistance).toBeGreaterThanOrEqual(6);
  });

  it('is deterministic for a seed and differs across seeds', () => {
    const a = maximalHammingPermutations(9, 30, 7);
    const b = maximalHammingPermutations(9, 30, 7);
    const c = maximalHammingPermutations(9, 30, 8);
    expect(b.permutations).toEqual(a.permutations);
    expect(c.permutations).not.toEqual(a.permutations);
    expect(bruteForceMinDistance(c.permutations)).toBe(c.minHammingDistance);
  });

  it('2x2: the set can hold all 24 permutations; small sets are maximally spread', () => {
    expect(maxPermutationCount(4)).toBe(24);
    const all = maximalHammingPermutations(4, 24, 1);
    expect(new Set(all.permutations.map((p) => p.join(','))).size).toBe(24);
    expect(all.minHammingDistance).toBe(bruteForceMinDistance(all.permutations));
    // 4 permutations of 4 tiles can differ in every position (a Latin square).
    const four = maximalHammingPermutations(4, 4, 1);
    expect(four.minHammingDistance).toBe(4);
    expect(bruteForceMinDistance(four.permutations)).toBe(4);
  });

  it('rejects counts beyond T!', () => {
    expect(() => maximalHammingPermutations(4, 25, 0)).toThrow(
      'maximalHammingPermutations needs a count between 2 and 24 for 4 tiles, got 25',
    );
  });
});
