/**
 * Small charts rendered to PNG: an SVG is built as text and rasterised by
 * sharp (librsvg). No browser, no canvas package. Charts: line charts (training
 * curves), scatter plots (embedding maps), heatmaps (confusion matrices), bar
 * charts with error bars (label-budget studies) and reliability diagrams.
 */
import sharp from 'sharp';
import { writeFileAtomic } from '../util/atomic.js';

export const PALETTE = [
  '#1f77b4',
  '#ff7f0e',
  '#2ca02c',
  '#d62728',
  '#9467bd',
  '#8c564b',
  '#e377c2',
  '#7f7f7f',
  '#bcbd22',
  '#17becf',
];

export interface Frame {
  width?: number;
  height?: number;
  title?: string;
  xLabel?: string;
  yLabel?: string;
}

export interface Series {
  name: string;
  x: ArrayLike<number>;
  y: ArrayLike<number>;
  color?: string;
}

const MARGIN = { left: 64, right: 20, top: 36, bottom: 48 };

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

function finiteExtent(values: number[]): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (Number.isFinite(v)) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
  }
  if (!Number.isFinite(lo)) return [0, 1];
  if (lo === hi) return [lo - 0.5, hi + 0.5];
  const pad = (hi - lo) * 0.04;
  return [lo - pad, hi + pad];
}

/** "Nice" tick values covering [lo, hi]. */
export function ticks(lo: number, hi: number, count = 5): number[] {
  const span = hi - lo;
  const raw = span / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => span / s <= count) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

function fmt(v: number): string {
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(1);
  return Number(v.toPrecision(4)).toString();
}

interface Axes {
  svg: string[];
  sx: (x: number) => number;
  sy: (y: number) => number;
  width: number;
  height: number;
}

function axes(
  frame: Frame,
  xr: [number, number],
  yr: [number, number],
  xTickLabels?: string[],
  rightMargin = MARGIN.right,
): Axes {
  const width = frame.width ?? 640;
  const height = frame.height ?? 400;
  const pw = width - MARGIN.left - rightMargin;
  const ph = height - MARGIN.top - MARGIN.bottom;
  const sx = (x: number) => MARGIN.left + ((x - xr[0]) / (xr[1] - xr[0])) * pw;
  const sy = (y: number) => MARGIN.top + ph - ((y - yr[0]) / (yr[1] - yr[0])) * ph;
  const svg: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="DejaVu Sans, Arial, sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
  ];
  for (const t of ticks(yr[0], yr[1])) {
    if (t < yr[0] || t > yr[1]) continue;
    svg.push(`<line x1="${MARGIN.left}" x2="${width - rightMargin}" y1="${sy(t)}" y2="${sy(t)}" stroke="#e5e5e5"/>`);
    svg.push(`<text x="${MARGIN.left - 6}" y="${sy(t) + 4}" text-anchor="end" fill="#333">${fmt(t)}</text>`);
  }
  if (xTickLabels) {
    xTickLabels.forEach((label, i) => {
      svg.push(
        `<text x="${sx(i)}" y="${height - MARGIN.bottom + 16}" text-anchor="middle" fill="#333">${esc(label)}</text>`,
      );
    });
  } else {
    for (const t of ticks(xr[0], xr[1])) {
      if (t < xr[0] || t > xr[1]) continue;
      svg.push(
        `<text x="${sx(t)}" y="${height - MARGIN.bottom + 16}" text-anchor="middle" fill="#333">${fmt(t)}</text>`,
      );
    }
  }
  svg.push(`<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${pw}" height="${ph}" fill="none" stroke="#666"/>`);
  if (frame.title)
    svg.push(
      `<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${esc(frame.title)}</text>`,
    );
  if (frame.xLabel)
    svg.push(`<text x="${MARGIN.left + pw / 2}" y="${height - 10}" text-anchor="middle">${esc(frame.xLabel)}</text>`);
  if (frame.yLabel) {
    svg.push(
      `<text transform="translate(16 ${MARGIN.top + ph / 2}) rotate(-90)" text-anchor="middle">${esc(frame.yLabel)}</text>`,
    );
  }
  return { svg, sx, sy, width, height };
}

function legend(svg: string[], names: string[], colors: string[], x: number, y: number): void {
  names.forEach((name, i) => {
    svg.push(`<rect x="${x}" y="${y + i * 16 - 9}" width="10" height="10" fill="${colors[i]}"/>`);
    svg.push(`<text x="${x + 14}" y="${y + i * 16}" fill="#222">${esc(name)}</text>`);
  });
}

/** Rasterises an SVG string to PNG bytes. */
export async function svgToPng(svg: string): Promise<Buffer> {
  return sharp(Buffer.from(svg)).png({ compressionLevel: 9 }).toBuffer();
}

/** Line chart of one or more series; returns the SVG text. */
export function lineChartSvg(series: Series[], frame: Frame = {}): string {
  const xr = finiteExtent(series.flatMap((s) => Array.from(s.x)));
  const yr = finiteExtent(series.flatMap((s) => Array.from(s.y)));
  const a = axes(frame, xr, yr);
  const colors = series.map((s, i) => s.color ?? PALETTE[i % PALETTE.length]);
  series.forEach((s, i) => {
    const pts: string[] = [];
    for (let j = 0; j < s.x.length; j++) {
      if (Number.isFinite(s.x[j]) && Number.isFinite(s.y[j]))
        pts.push(`${a.sx(s.x[j]).toFixed(1)},${a.sy(s.y[j]).toFixed(1)}`);
    }
    if (pts.length === 1) {
      const [px, py] = pts[0].split(',');
      a.svg.push(`<circle cx="${px}" cy="${py}" r="3" fill="${colors[i]}"/>`);
    }
    a.svg.push(`<polyline points="${pts.join(' ')}" fill="none" stroke="${colors[i]}" stroke-width="1.6"/>`);
  });
  if (series.length > 1)
    legend(
      a.svg,
      series.map((s) => s.name),
      colors,
      a.width - MARGIN.right - 150,
      MARGIN.top + 16,
    );
  a.svg.push('</svg>');
  return a.svg.join('\n');
}

export interface ScatterOptions extends Frame {
  /** Class index per point (colours); omitted: one colour. */
  labels?: ArrayLike<number>;
  classNames?: string[];
  radius?: number;
}

/** Scatter plot of 2-D points, coloured by label. */
export function scatterSvg(x: ArrayLike<number>, y: ArrayLike<number>, options: ScatterOptions = {}): string {
  const xr = finiteExtent(Array.from(x));
  const yr = finiteExtent(Array.from(y));
  // With a legend, it goes in a right-hand margin so it never covers points.
  const names = options.labels && options.classNames ? options.classNames : undefined;
  const legendWidth = names ? 40 + 7 * Math.max(...names.map((n) => n.length)) : 0;
  const a = axes({ width: 640 + legendWidth, height: 560, ...options }, xr, yr, undefined, MARGIN.right + legendWidth);
  const r = options.radius ?? 2.2;
  for (let i = 0; i < x.length; i++) {
    const label = options.labels ? options.labels[i] : 0;
    const color = label < 0 ? '#999999' : PALETTE[label % PALETTE.length];
    a.svg.push(
      `<circle cx="${a.sx(x[i]).toFixed(1)}" cy="${a.sy(y[i]).toFixed(1)}" r="${r}" fill="${color}" fill-opacity="0.75"/>`,
    );
  }
  if (options.labels && options.classNames) {
    legend(
      a.svg,
      options.classNames,
      options.classNames.map((_, i) => PALETTE[i % PALETTE.length]),
      a.width - legendWidth,
      MARGIN.top + 16,
    );
  }
  a.svg.push('</svg>');
  return a.svg.join('\n');
}

export interface HeatmapOptions extends Frame {
  rowLabels?: string[];
  colLabels?: string[];
  /** Print the value in each cell (default true when <= 20x20). */
  annotate?: boolean;
}

/** Heatmap of a rows x cols matrix (row-major), e.g. a confusion matrix (rows = true class). */
export function heatmapSvg(
  values: ArrayLike<number>,
  rows: number,
  cols: number,
  options: HeatmapOptions = {},
): string {
  const cell = Math.max(18, Math.min(48, Math.floor(560 / Math.max(rows, cols))));
  const left = 110;
  const top = 40;
  const width = options.width ?? left + cols * cell + 30;
  const height = options.height ?? top + rows * cell + 90;
  let max = 0;
  for (let i = 0; i < rows * cols; i++) max = Math.max(max, values[i]);
  const svg: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="DejaVu Sans, Arial, sans-serif" font-size="11">`,
    '<rect width="100%" height="100%" fill="white"/>',
  ];
  if (options.title)
    svg.push(
      `<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${esc(options.title)}</text>`,
    );
  const annotate = options.annotate ?? (rows <= 20 && cols <= 20);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const v = values[r * cols + c];
      const t = max > 0 ? v / max : 0;
      const shade = Math.round(255 - t * 200);
      const fill = `rgb(${shade},${Math.round(255 - t * 120)},255)`;
      svg.push(
        `<rect x="${left + c * cell}" y="${top + r * cell}" width="${cell}" height="${cell}" fill="${fill}" stroke="#fff"/>`,
      );
      if (annotate) {
        svg.push(
          `<text x="${left + c * cell + cell / 2}" y="${top + r * cell + cell / 2 + 4}" text-anchor="middle" fill="${t > 0.6 ? '#fff' : '#222'}">${fmt(v)}</text>`,
        );
      }
    }
    const label = options.rowLabels?.[r] ?? String(r);
    svg.push(`<text x="${left - 6}" y="${top + r * cell + cell / 2 + 4}" text-anchor="end">${esc(label)}</text>`);
  }
  for (let c = 0; c < cols; c++) {
    const label = options.colLabels?.[c] ?? String(c);
    const x = left + c * cell + cell / 2;
    const y = top + rows * cell + 10;
    svg.push(`<text transform="translate(${x} ${y}) rotate(45)" text-anchor="start">${esc(label)}</text>`);
  }
  if (options.yLabel)
    svg.push(
      `<text transform="translate(14 ${top + (rows * cell) / 2}) rotate(-90)" text-anchor="middle">${esc(options.yLabel)}</text>`,
    );
  if (options.xLabel)
    svg.push(
      `<text x="${left + (cols * cell) / 2}" y="${height - 8}" text-anchor="middle">${esc(options.xLabel)}</text>`,
    );
  svg.push('</svg>');
  return svg.join('\n');
}

export interface BarGroup {
  /** Label under the group, e.g. "10 labels/class". */
  label: string;
  /** One bar per series: mean and optional spread (drawn as +/- error bar). */
  bars: Array<{ mean: number; spread?: number }>;
}

/** Grouped bar chart with error bars (mean +/- spread). */
export function barChartSvg(groups: BarGroup[], seriesNames: string[], frame: Frame = {}): string {
  const all = groups.flatMap((g) => g.bars.flatMap((b) => [b.mean + (b.spread ?? 0), b.mean - (b.spread ?? 0), 0]));
  const yr = finiteExtent(all);
  const a = axes(
    frame,
    [-0.5, groups.length - 0.5],
    yr,
    groups.map((g) => g.label),
  );
  const nb = Math.max(1, seriesNames.length);
  const groupWidth = (a.sx(1) - a.sx(0)) * 0.8;
  const bw = groupWidth / nb;
  groups.forEach((g, gi) => {
    g.bars.forEach((b, bi) => {
      const x0 = a.sx(gi) - groupWidth / 2 + bi * bw;
      const y0 = a.sy(Math.max(0, b.mean));
      const y1 = a.sy(Math.min(0, b.mean));
      a.svg.push(
        `<rect x="${x0 + 1}" y="${y0}" width="${bw - 2}" height="${Math.max(0, y1 - y0)}" fill="${PALETTE[bi % PALETTE.length]}"/>`,
      );
      if (b.spread) {
        const cx = x0 + bw / 2;
        const hi = a.sy(b.mean + b.spread);
        const lo = a.sy(b.mean - b.spread);
        a.svg.push(`<line x1="${cx}" x2="${cx}" y1="${hi}" y2="${lo}" stroke="#111" stroke-width="1.2"/>`);
        a.svg.push(`<line x1="${cx - 4}" x2="${cx + 4}" y1="${hi}" y2="${hi}" stroke="#111"/>`);
        a.svg.push(`<line x1="${cx - 4}" x2="${cx + 4}" y1="${lo}" y2="${lo}" stroke="#111"/>`);
      }
    });
  });
  legend(
    a.svg,
    seriesNames,
    seriesNames.map((_, i) => PALETTE[i % PALETTE.length]),
    MARGIN.left + 10,
    MARGIN.top + 16,
  );
  a.svg.push('</svg>');
  return a.svg.join('\n');
}

/**
 * Reliability diagram: per confidence bin, the accuracy (bars) against the
 * diagonal of perfect calibration.
 */
export function reliabilitySvg(
  binConfidence: ArrayLike<number>,
  binAccuracy: ArrayLike<number>,
  binCount: ArrayLike<number>,
  frame: Frame = {},
): string {
  const a = axes({ xLabel: 'confidence', yLabel: 'accuracy', ...frame }, [0, 1], [0, 1]);
  const n = binAccuracy.length;
  for (let i = 0; i < n; i++) {
    if (!binCount[i]) continue;
    const x0 = a.sx(i / n);
    const x1 = a.sx((i + 1) / n);
    a.svg.push(
      `<rect x="${x0 + 1}" y="${a.sy(binAccuracy[i])}" width="${x1 - x0 - 2}" height="${a.sy(0) - a.sy(binAccuracy[i])}" fill="${PALETTE[0]}" fill-opacity="0.8"/>`,
    );
    a.svg.push(`<circle cx="${a.sx(binConfidence[i])}" cy="${a.sy(binConfidence[i])}" r="2" fill="${PALETTE[3]}"/>`);
  }
  a.svg.push(
    `<line x1="${a.sx(0)}" y1="${a.sy(0)}" x2="${a.sx(1)}" y2="${a.sy(1)}" stroke="#d62728" stroke-dasharray="5,4"/>`,
  );
  a.svg.push('</svg>');
  return a.svg.join('\n');
}

/** Renders `svg` and writes the PNG atomically. */
export async function writePng(path: string, svg: string): Promise<void> {
  await writeFileAtomic(path, await svgToPng(svg));
}
