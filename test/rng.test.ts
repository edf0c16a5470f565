import { describe, expect, it } from 'vitest';
import { createRng, restoreRng } from '../src/util/rng.js';

describe('rng', () => {
  it('same seed gives the same stream, different seeds differ', () => {
    const a = createRng(7);
    const b = createRng(7);
    const c = createRng(8);
    const xa = Array.from({ length: 5 }, () => a.next());
    const xb = Array.from({ length: 5 }, () => b.next());
    const xc = Array.from({ length: 5 }, () => c.next());
    expect(xa).toEqual(xb);
    expect(xa).not.toEqual(xc);
  });
  it('derived streams are independent of draws on the parent', () => {
    const a = createRng(1);
    const d1 = a.derive('epoch', 2).next();
    a.next();
    a.next();
    expect(a.derive('epoch', 2).next()).toBe(d1);
    expect(a.derive('epoch', 3).next()).not.toBe(d1);
  });
  it('state round-trips', () => {
    const a = createRng('s');
    a.next();
    const st = a.state();
    const r = restoreRng('s', st);
    expect(r.next()).toBe(a.next());
  });
  it('permutation is a permutation', () => {
    const p = Array.from(createRng(3).permutation(50)).sort((x, y) => x - y);
    expect(p).toEqual(Array.from({ length: 50 }, (_, i) => i));
  });
});
