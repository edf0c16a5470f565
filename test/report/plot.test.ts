import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import {
  barChartSvg,
  heatmapSvg,
  lineChartSvg,
  reliabilitySvg,
  scatterSvg,
  ticks,
  writePng,
} from '../../src/report/plot.js';

async function stats(file: string) {
  const img = sharp(file);
  const meta = await img.metadata();
  const s = await img.stats();
  return { meta, s };
}

describe('plots', () => {
  it('ticks cover the range with round steps', () => {
    expect(ticks(0, 1)).toEqual([0, 0.2, 0.4, 0.6, 0.8, 1]);
    expect(ticks(0, 95)).toEqual([0, 20, 40, 60, 80]);
  });

  it('renders every chart kind to a non-blank PNG of the asked size', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'selfsup-plot-'));
    const charts: Array<[string, string, number, number]> = [
      [
        'line.png',
        lineChartSvg(
          [
            { name: 'loss', x: [0, 1, 2, 3], y: [2, 1.5, 1.1, 0.9] },
            { name: 'acc', x: [0, 3], y: [0.1, 0.8] },
          ],
          { title: 'curves', width: 500, height: 300 },
        ),
        500,
        300,
      ],
      ['scatter.png', scatterSvg([0, 1, 2], [1, 0, 2], { labels: [0, 1, 2], classNames: ['a', 'b', 'c'] }), 687, 560],
      ['reliability.png', reliabilitySvg([0.55, 0.95], [0.5, 0.9], [10, 20], { width: 400, height: 400 }), 400, 400],
      [
        'bars.png',
        barChartSvg(
          [
            {
              label: '10',
              bars: [
                { mean: 0.5, spread: 0.05 },
                { mean: 0.6, spread: 0.02 },
              ],
            },
          ],
          ['scratch', 'pretrained'],
        ),
        640,
        400,
      ],
    ];
    for (const [name, svg, w, h] of charts) {
      const file = path.join(dir, name);
      await writePng(file, svg);
      const { meta, s } = await stats(file);
      expect(meta.format).toBe('png');
      expect([meta.width, meta.height]).toEqual([w, h]);
      // something was drawn: not a single flat colour
      expect(s.channels[0].min).toBeLessThan(200);
      expect(s.channels[0].max).toBe(255);
    }
    const heat = path.join(dir, 'heat.png');
    await writePng(
      heat,
      heatmapSvg([5, 1, 0, 9], 2, 2, { rowLabels: ['x', 'y'], colLabels: ['x', 'y'], title: 'confusion' }),
    );
    const { meta } = await stats(heat);
    expect(meta.width).toBeGreaterThan(100);
  });

  it('escapes text so labels cannot break the SVG', () => {
    const svg = lineChartSvg([
      { name: '<b>&"', x: [0, 1], y: [0, 1] },
      { name: 'b', x: [0], y: [1] },
    ]);
    expect(svg).toContain('&lt;b&gt;&amp;&quot;');
    expect(svg).not.toContain('<b>');
  });
});
