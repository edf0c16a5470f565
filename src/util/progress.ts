/**
 * A progress reporter: a one-line bar on a terminal, plain lines (at most one
 * every `plainEverySeconds`) otherwise, nothing when silent.
 */
export interface ProgressOptions {
  total?: number;
  label: string;
  stream?: NodeJS.WriteStream;
  silent?: boolean;
  plainEverySeconds?: number;
}

export class Progress {
  private readonly stream: NodeJS.WriteStream;
  private readonly tty: boolean;
  private readonly start = Date.now();
  private lastDraw = 0;
  private done = 0;
  private extra = '';

  constructor(private readonly options: ProgressOptions) {
    this.stream = options.stream ?? process.stderr;
    this.tty = Boolean(this.stream.isTTY) && process.env.CI !== 'true';
  }

  /** Sets the completed count and an optional status text, redrawing at most 10x per second. */
  update(done: number, extra = ''): void {
    this.done = done;
    this.extra = extra;
    const now = Date.now();
    const every = this.tty ? 100 : (this.options.plainEverySeconds ?? 10) * 1000;
    if (now - this.lastDraw >= every) {
      this.lastDraw = now;
      this.draw(false);
    }
  }

  tick(n = 1, extra = ''): void {
    this.update(this.done + n, extra || this.extra);
  }

  finish(extra = ''): void {
    if (extra) this.extra = extra;
    this.draw(true);
  }

  get elapsedSeconds(): number {
    return (Date.now() - this.start) / 1000;
  }

  private draw(final: boolean): void {
    if (this.options.silent) return;
    const { total, label } = this.options;
    const secs = this.elapsedSeconds;
    const rate = secs > 0 ? this.done / secs : 0;
    let text: string;
    if (total && total > 0) {
      const frac = Math.min(1, this.done / total);
      const width = 24;
      const filled = Math.round(frac * width);
      const bar = this.tty ? `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ` : '';
      text = `${label} ${bar}${this.done}/${total} (${(frac * 100).toFixed(0)}%) ${rate.toFixed(1)}/s ${secs.toFixed(0)}s`;
    } else {
      text = `${label} ${this.done} ${rate.toFixed(1)}/s ${secs.toFixed(0)}s`;
    }
    if (this.extra) text += ` ${this.extra}`;
    if (this.tty) {
      this.stream.write(`\r\x1b[2K${text}${final ? '\n' : ''}`);
    } else {
      this.stream.write(`${text}\n`);
    }
  }
}
