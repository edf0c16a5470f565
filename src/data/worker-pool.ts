/**
 * A small pool of augmentation worker threads, shared by every loader in the
 * process (so epochs do not pay thread start-up). Workers are unref'd while
 * idle, so an idle pool never keeps the process alive.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { AugmentJob, AugmentResult } from './augment-batch.js';

let workerUrl: URL | null = new URL('./augment-worker.js', import.meta.url);

/**
 * Overrides where the worker script is (tests running TypeScript sources point
 * it at a compiled copy); null disables workers.
 */
export function setAugmentWorkerUrl(url: URL | null): void {
  workerUrl = url;
  shutdownAugmentPool();
}

/** True when a compiled worker script exists (false when running .ts sources directly). */
export function augmentWorkersAvailable(): boolean {
  return workerUrl !== null && existsSync(fileURLToPath(workerUrl));
}

interface Pending {
  resolve: (r: AugmentResult) => void;
  reject: (e: Error) => void;
}

class PoolWorker {
  readonly worker: Worker;
  busy = 0;
  private readonly pending = new Map<number, Pending>();

  constructor(url: URL) {
    this.worker = new Worker(url);
    this.worker.unref();
    this.worker.on('message', (message: { id: number; result?: AugmentResult; error?: string }) => {
      const waiter = this.pending.get(message.id);
      if (!waiter) return;
      this.pending.delete(message.id);
      this.done();
      if (message.error !== undefined) waiter.reject(new Error(message.error));
      else waiter.resolve(message.result!);
    });
    this.worker.on('error', (e) => this.failAll(e));
    this.worker.on('exit', (code) => this.failAll(new Error(`augmentation worker exited with code ${code}`)));
  }

  run(id: number, job: AugmentJob, transfer: ArrayBuffer[]): Promise<AugmentResult> {
    if (this.busy++ === 0) this.worker.ref();
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, job }, transfer);
    });
  }

  private done(): void {
    if (--this.busy === 0) this.worker.unref();
  }

  private failAll(error: Error): void {
    for (const waiter of this.pending.values()) waiter.reject(error);
    this.pending.clear();
    this.busy = 0;
    pool = pool.filter((w) => w !== this);
  }
}

let pool: PoolWorker[] = [];
let nextId = 0;

/** Runs `job` on the least busy of `size` workers (the pool grows to `size` on demand). */
export function runOnPool(size: number, job: AugmentJob, transfer: ArrayBuffer[]): Promise<AugmentResult> {
  if (!workerUrl) throw new Error('augmentation workers are disabled');
  while (pool.length < size) pool.push(new PoolWorker(workerUrl));
  let best = pool[0];
  for (const w of pool.slice(0, size)) if (w.busy < best.busy) best = w;
  return best.run(nextId++, job, transfer);
}

/** Terminates all pool workers (they are restarted on next use). */
export function shutdownAugmentPool(): void {
  const old = pool;
  pool = [];
  for (const w of old) void w.worker.terminate();
}
