#!/usr/bin/env node
/**
 * Plot of the selection studies of bench/select-fashion-mnist.sh (docs/img/select-study.png):
 * mean test accuracy over seeds by labels picked, one line per strategy.
 * Usage: node bench/select-plot.mjs <out-dir of select-fashion-mnist.sh> <png>
 */
import path from 'node:path';
import { lineChartSvg, writePng } from '../dist/src/report/plot.js';
import { readArrowTable } from '../dist/src/util/arrow.js';

const [dir = 'runs/select-fashion-mnist', png = 'docs/img/select-study.png'] = process.argv.slice(2);
const runs = [
  ['study', (s) => (s === 'balanced' ? null : s === 'uncertainty' || s === 'hybrid' ? `${s}, k-center 1st` : s)],
  ['study-typical', (s) => s],
  ['study-uncertainty-typical', () => 'uncertainty, typical 1st'],
];
const series = [];
for (const [run, rename] of runs) {
  const t = readArrowTable(path.join(dir, run, 'study.arrow'));
  const strategy = t.getChild('strategy').toArray();
  const labels = t.getChild('labels').toArray();
  const accuracy = t.getChild('accuracy').toArray();
  for (const s of new Set(strategy)) {
    const name = rename(s);
    if (!name) continue;
    const xs = [...new Set(labels)].sort((a, b) => a - b);
    const ys = xs.map((x) => {
      const v = [];
      for (let i = 0; i < strategy.length; i++) if (strategy[i] === s && labels[i] === x) v.push(accuracy[i] * 100);
      return v.reduce((a, b) => a + b, 0) / v.length;
    });
    series.push({ name, x: xs, y: ys });
  }
}
await writePng(
  png,
  lineChartSvg(series, {
    title: 'Fashion-MNIST: test accuracy by labels picked (mean of 3 seeds)',
    xLabel: 'labels',
    yLabel: 'accuracy (%)',
    width: 760,
    height: 420,
  }),
);
