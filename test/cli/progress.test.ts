import { describe, expect, it } from 'vitest';
import { progressFor } from '../../src/cli/common.js';
import { Progress } from '../../src/util/progress.js';

const ESC = String.fromCharCode(27);

/** A stand-in for process.stderr that records what is written. */
function stream(isTTY: boolean) {
  const written: string[] = [];
  return { written, stream: { isTTY, write: (s: string) => written.push(s) > 0 } as unknown as NodeJS.WriteStream };
}

describe('progress output', () => {
  it('draws a redrawn bar on a terminal', () => {
    const previous = process.env.CI;
    delete process.env.CI;
    try {
      const out = stream(true);
      const bar = new Progress({ label: 'embed', total: 4, stream: out.stream });
      bar.update(2);
      bar.finish();
      expect(out.written[0].startsWith(`\r${ESC}[2Kembed [${'#'.repeat(12)}${'.'.repeat(12)}] 2/4 (50%)`)).toBe(true);
      expect(out.written.at(-1)).toMatch(/\n$/);
    } finally {
      if (previous !== undefined) process.env.CI = previous;
    }
  });

  it('writes plain lines, no escape codes, when not on a terminal', () => {
    const out = stream(false);
    const bar = new Progress({ label: 'scan', total: 10, stream: out.stream, plainEverySeconds: 0 });
    for (let i = 1; i <= 10; i++) bar.update(i);
    bar.finish();
    expect(out.written.length).toBeGreaterThan(1);
    for (const line of out.written) {
      expect(line).not.toContain(ESC);
      expect(line).toMatch(/^scan \d+\/10 \(\d+%\).*\n$/);
    }
  });

  it('is silent with --quiet and with --json', () => {
    const written: string[] = [];
    const original = process.stderr.write;
    process.stderr.write = ((chunk: string) => written.push(String(chunk)) > 0) as typeof process.stderr.write;
    try {
      const drawn = (opts: { quiet?: boolean; json?: boolean }) => {
        written.length = 0;
        const bar = progressFor(opts, 'embed', 2);
        bar.update(1);
        bar.finish();
        return written.join('');
      };
      expect(drawn({ quiet: true })).toBe('');
      expect(drawn({ json: true })).toBe('');
      expect(drawn({})).toContain('embed');
    } finally {
      process.stderr.write = original;
    }
  });
});
