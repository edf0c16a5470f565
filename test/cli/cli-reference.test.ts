import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../../src/cli/main.js';
import { REFERENCE_BEGIN, REFERENCE_END, renderCliReference } from '../../src/cli/reference.js';
import { ROOT } from '../support/cli.js';

describe('CLI reference (docs/cli.md)', () => {
  it('has every command, each with examples in its help', () => {
    const names = buildProgram().commands.map((c) => c.name());
    for (const name of [
      'scan',
      'pretrain',
      'finetune',
      'export',
      'import',
      'embed',
      'eval',
      'budget',
      'doctor',
      'demo',
    ])
      expect(names).toContain(name);
    const reference = renderCliReference();
    expect(reference.match(/^Examples:$/gm)?.length).toBe(names.length);
  });

  it('matches the commands as defined (regenerate with `npm run build && node scripts/docs-cli.mjs`)', () => {
    const document = readFileSync(path.join(ROOT, 'docs/cli.md'), 'utf8');
    const begin = document.indexOf(REFERENCE_BEGIN);
    const end = document.indexOf(REFERENCE_END) + REFERENCE_END.length;
    expect(begin).toBeGreaterThan(0);
    expect(document.slice(begin, end)).toBe(renderCliReference());
  });
});
