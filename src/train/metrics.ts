/**
 * Training metrics: one row per step and one per epoch, written as an Arrow
 * file (`metrics.arrow`; pandas `read_feather`, polars `read_ipc`, DuckDB read it)
 * and drawn as curves (`curves.png`) at the end of a run.
 */
import { lineChartSvg, PALETTE, type Series, writePng } from '../report/plot.js';
import { type Columns, columnValues, readArrowTable, tableBytes } from '../util/arrow.js';
import { writeFileAtomic } from '../util/atomic.js';

/**
 * A metrics row. `kind` is `step` or `epoch`; epoch rows carry the epoch means
 * (loss, task metrics) and the monitors (kNN accuracy). Missing values are NaN.
 */
export interface MetricsRow {
  kind: 'step' | 'epoch';
  /** 0-based epoch. */
  epoch: number;
  /** 0-based step inside the epoch (epoch rows: the number of steps run). */
  step: number;
  /** Steps since the start of the run (1-based count after this step). */
  globalStep: number;
  loss: number;
  lr: number;
  /** Global L2 norm of the gradients before clipping. */
  gradNorm: number;
  imagesPerSecond: number;
  /** Milliseconds this step (epoch: the whole epoch) waited for its batch. */
  dataWaitMs: number;
  /** Mean per-dimension std of L2-normalised embeddings (collapse alarm), when measured. */
  embeddingSpread: number;
  /** kNN accuracy on the labelled validation set (epoch rows, when monitored). */
  knnAccuracy: number;
  /** Wall-clock seconds of the step (epoch: of the epoch). */
  seconds: number;
  /** Task metrics, e.g. `accuracy`. */
  [taskMetric: string]: number | string;
}

const FIXED = [
  'kind',
  'epoch',
  'step',
  'globalStep',
  'loss',
  'lr',
  'gradNorm',
  'imagesPerSecond',
  'dataWaitMs',
  'embeddingSpread',
  'knnAccuracy',
  'seconds',
];

/** Rows of a run, in order; serialises to Arrow columns. */
export class MetricsLog {
  readonly rows: MetricsRow[] = [];

  add(row: MetricsRow): void {
    this.rows.push(row);
  }

  /** Column names: the fixed ones, then task metrics in order of first appearance. */
  columnNames(): string[] {
    const names = [...FIXED];
    for (const row of this.rows) for (const key of Object.keys(row)) if (!names.includes(key)) names.push(key);
    return names;
  }

  toColumns(): Columns {
    const columns: Columns = {};
    for (const name of this.columnNames()) {
      if (name === 'kind') columns.kind = this.rows.map((r) => r.kind);
      else {
        const values = new Float64Array(this.rows.length);
        this.rows.forEach((r, i) => {
          const v = r[name];
          values[i] = typeof v === 'number' ? v : Number.NaN;
        });
        columns[name] = values;
      }
    }
    return columns;
  }

  /** Arrow IPC file bytes of all rows. */
  toArrowBytes(metadata: Record<string, string> = {}): Uint8Array {
    return tableBytes(this.toColumns(), metadata);
  }

  async writeArrow(file: string, metadata: Record<string, string> = {}): Promise<void> {
    await writeFileAtomic(file, this.toArrowBytes(metadata));
  }

  /** Reads rows written by {@link writeArrow} (a run's or a checkpoint's metrics.arrow). */
  static read(file: string): MetricsLog {
    const table = readArrowTable(file);
    const names = table.schema.fields.map((f) => f.name);
    const columns = new Map(names.map((n) => [n, columnValues(table, n)]));
    const log = new MetricsLog();
    for (let i = 0; i < table.numRows; i++) {
      const row: Record<string, number | string> = {};
      for (const name of names) row[name] = columns.get(name)![i] as number | string;
      log.add(row as MetricsRow);
    }
    return log;
  }

  stepRows(): MetricsRow[] {
    return this.rows.filter((r) => r.kind === 'step');
  }

  epochRows(): MetricsRow[] {
    return this.rows.filter((r) => r.kind === 'epoch');
  }
}

function mean(values: number[]): number {
  const finite = values.filter(Number.isFinite);
  return finite.length ? finite.reduce((a, b) => a + b, 0) / finite.length : Number.NaN;
}

/**
 * The epoch row from its step rows: means of loss, gradient norm, spread and task
 * metrics; the last lr; images/s over the summed step time; total data wait.
 */
export function summarizeEpoch(rows: MetricsRow[], epoch: number, globalStep: number, seconds: number): MetricsRow {
  const summary: MetricsRow = {
    kind: 'epoch',
    epoch,
    step: rows.length,
    globalStep,
    loss: mean(rows.map((r) => r.loss)),
    lr: rows.at(-1)?.lr ?? Number.NaN,
    gradNorm: mean(rows.map((r) => r.gradNorm)),
    imagesPerSecond:
      rows.reduce((n, r) => n + r.imagesPerSecond * r.seconds, 0) /
      Math.max(
        1e-9,
        rows.reduce((n, r) => n + r.seconds, 0),
      ),
    dataWaitMs: rows.reduce((n, r) => n + r.dataWaitMs, 0),
    embeddingSpread: mean(rows.map((r) => r.embeddingSpread)),
    knnAccuracy: Number.NaN,
    seconds,
  };
  const taskKeys = Object.keys(rows[0] ?? {}).filter((k) => !FIXED.includes(k));
  for (const key of taskKeys) summary[key] = mean(rows.map((r) => r[key] as number));
  return summary;
}

/** Task metric names present in the rows (not the fixed columns). */
function taskMetricNames(log: MetricsLog): string[] {
  return log.columnNames().filter((n) => !FIXED.includes(n));
}

function finiteSeries(name: string, rows: MetricsRow[], key: string, color: string): Series | undefined {
  const kept = rows.filter((r) => typeof r[key] === 'number' && Number.isFinite(r[key] as number));
  if (kept.length === 0) return undefined;
  return { name, x: kept.map((r) => r.globalStep), y: kept.map((r) => r[key] as number), color };
}

function stripXml(svg: string): string {
  return svg.replace(/^<\?xml[^>]*>\s*/, '');
}

/**
 * Draws the curves of a run as one PNG of stacked panels: loss (steps and epoch
 * means), task metrics and kNN accuracy, learning rate. x axis: global step.
 */
export async function writeCurves(file: string, log: MetricsLog, title = 'pretraining'): Promise<void> {
  const steps = log.stepRows();
  const epochs = log.epochRows();
  const panels: string[] = [];
  const width = 720;
  const height = 260;
  const add = (series: Array<Series | undefined>, panelTitle: string, yLabel: string) => {
    const present = series.filter((s): s is Series => s !== undefined);
    if (present.length) {
      const named = present.length === 1 ? `${panelTitle}: ${present[0].name}` : panelTitle;
      panels.push(stripXml(lineChartSvg(present, { width, height, title: named, xLabel: 'step', yLabel })));
    }
  };
  add(
    [
      finiteSeries('loss (step)', steps, 'loss', PALETTE[0]),
      finiteSeries('loss (epoch mean)', epochs, 'loss', PALETTE[1]),
    ],
    `${title}: loss`,
    'loss',
  );
  const accuracySeries = taskMetricNames(log).map((name, i) =>
    finiteSeries(`${name} (epoch mean)`, epochs, name, PALETTE[(i + 2) % PALETTE.length]),
  );
  accuracySeries.push(finiteSeries('kNN accuracy', epochs, 'knnAccuracy', PALETTE[3]));
  add(accuracySeries, `${title}: monitors`, 'value');
  add([finiteSeries('learning rate', steps, 'lr', PALETTE[4])], title, 'lr');
  const body = panels.map((svg, i) => `<g transform="translate(0, ${i * height})">${svg}</g>`).join('\n');
  const total = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${Math.max(1, panels.length) * height}">\n<rect width="100%" height="100%" fill="white"/>\n${body}\n</svg>`;
  await writePng(file, total);
}
