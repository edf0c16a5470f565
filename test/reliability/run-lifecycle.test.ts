/**
 * A pretraining run's folder over its life: one writer at a time (run.lock), a
 * checkpoint whenever it stops (--max-steps, Ctrl-C, SIGTERM, SIGHUP) with a
 * distinct exit code, checksummed tensors, num_batches_tracked carried across a
 * resume, and a failed start that can still be resumed. Each case failed before.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Backbone } from '../../src/backbones/types.js';
import { main } from '../../src/cli/main.js';
import { initEngine } from '../../src/engine/backend.js';
import type { TrainComponents } from '../../src/train/components.js';
import { pretrain, type TrainEvent } from '../../src/train/loop.js';
import { RUN_LOCK_FILE } from '../../src/train/run-dir.js';
import { InputError } from '../../src/util/errors.js';
import type { Rng } from '../../src/util/rng.js';
import { writeClassFolders } from '../cli/fixtures.js';
import { ensureBuilt, ROOT } from '../support/cli.js';
import { tinyComponents, tinyRecipe } from '../support/pretraining.js';
import { createTinyBackbone } from '../support/tiny-backbone.js';

const work = mkdtempSync(path.join(os.tmpdir(), 'selfsup-run-life-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** The tiny backbone with torchvision's BatchNorm counter, as the ResNets have. */
function countingNet(channels: 1 | 3, rng: Rng): Backbone & { numBatchesTracked: number } {
  const inner = createTinyBackbone(channels, rng);
  const net = {
    ...inner,
    numBatchesTracked: 0,
    features(x: tf.Tensor4D, training: boolean): tf.Tensor2D {
      if (training) net.numBatchesTracked++;
      return inner.features(x, training);
    },
  };
  return net;
}

// 48 images / batch 8 = 6 steps per epoch, 2 epochs; no step checkpoints (only at epoch ends).
const recipe = () => tinyRecipe({ train: { epochs: 2, checkpointEverySteps: 0 } });
const components = (): Partial<TrainComponents> => ({
  ...tinyComponents(),
  createBackbone: (config, rng) => countingNet(config.inputChannels, rng),
});
const run = (options: Parameters<typeof pretrain>[1]) =>
  pretrain(recipe(), { components: components(), dataPath: 'generated', progress: false, ...options });

const lastState = (runDir: string) => {
  const last = readFileSync(path.join(runDir, 'checkpoints', 'last'), 'utf8').trim();
  return JSON.parse(readFileSync(path.join(runDir, 'checkpoints', last, 'state.json'), 'utf8'));
};
const lastTensors = (runDir: string) => {
  const last = readFileSync(path.join(runDir, 'checkpoints', 'last'), 'utf8').trim();
  return path.join(runDir, 'checkpoints', last, 'tensors.bin');
};

let reference: { runDir: string; weights: Buffer; tracked: number };

beforeAll(async () => {
  expect(initEngine({ quiet: true }).backend).toBe('tensorflow');
  const result = await run({ outDir: work, runId: 'reference' });
  expect(result.status).toBe('finished');
  reference = {
    runDir: result.runDir,
    weights: readFileSync(lastTensors(result.runDir)),
    tracked: lastState(result.runDir).numBatchesTracked,
  };
  expect(reference.tracked).toBe(12);
});

describe('stopping and resuming (library)', () => {
  it('maxSteps writes a checkpoint, and the resume gives the uninterrupted run (num_batches_tracked too)', async () => {
    const first = await run({ outDir: work, runId: 'max-steps', maxSteps: 4 });
    expect(first.status).toBe('stopped');
    expect(readFileSync(path.join(first.runDir, 'checkpoints', 'last'), 'utf8').trim()).toBe('ckpt-000000004');
    const status = JSON.parse(readFileSync(path.join(first.runDir, 'status.json'), 'utf8'));
    expect(status).toMatchObject({ status: 'stopped', globalStep: 4 });
    expect(lastState(first.runDir).numBatchesTracked).toBe(4);
    const second = await run({ resume: first.runDir });
    expect(second.status).toBe('finished');
    expect(second.losses.length).toBe(8);
    expect(lastState(first.runDir).numBatchesTracked).toBe(reference.tracked);
    expect(readFileSync(lastTensors(first.runDir)).equals(reference.weights)).toBe(true);
  });

  it('a failed start leaves a run folder that --resume starts from the first step', async () => {
    const failing = { ...components(), openSource: async () => Promise.reject(new Error('cannot open the data')) };
    await expect(
      pretrain(recipe(), {
        components: failing,
        dataPath: 'generated',
        progress: false,
        outDir: work,
        runId: 'failed',
      }),
    ).rejects.toThrow('cannot open the data');
    const runDir = path.join(work, 'failed');
    expect(existsSync(path.join(runDir, RUN_LOCK_FILE))).toBe(false);
    const warnings: string[] = [];
    const resumed = await run({
      resume: runDir,
      onEvent: (e: TrainEvent) => {
        if (e.type === 'warning') warnings.push(e.message);
      },
    });
    expect(warnings).toContain(`${runDir} has no checkpoint yet: starting it from the first step`);
    expect(resumed.status).toBe('finished');
    expect(readFileSync(lastTensors(runDir)).equals(reference.weights)).toBe(true);
  });

  it('flipped bytes in tensors.bin: the resume refuses the checkpoint, naming the file', async () => {
    const first = await run({ outDir: work, runId: 'flipped', maxSteps: 3 });
    const file = lastTensors(first.runDir);
    const bytes = readFileSync(file);
    bytes[100] ^= 0xff;
    writeFileSync(file, bytes);
    await expect(run({ resume: first.runDir })).rejects.toThrow(`${file}: damaged: its sha256 is`);
  });
});

describe('run lock', () => {
  let sleeper: ChildProcess | undefined;
  afterAll(() => sleeper?.kill('SIGKILL'));

  it('a second writer of a run fails naming the holder; a dead holder is taken over with a message', async () => {
    const first = await run({ outDir: work, runId: 'locked', maxSteps: 2 });
    // A live process holds the lock (as a concurrent `pretrain --resume` would).
    sleeper = spawn('sleep', ['60'], { stdio: 'ignore' });
    const pid = sleeper.pid!;
    const lock = path.join(first.runDir, RUN_LOCK_FILE);
    writeFileSync(lock, JSON.stringify({ pid, hostname: os.hostname(), startedAt: '2026-01-01T00:00:00.000Z' }));
    const refused = run({ resume: first.runDir });
    await expect(refused).rejects.toThrow(InputError);
    await expect(refused).rejects.toThrow(
      `${first.runDir}: is in use by process ${pid} (since 2026-01-01T00:00:00.000Z, lock ${lock}); wait for it to finish or stop it first`,
    );
    expect(readFileSync(lock, 'utf8')).toContain(`"pid":${pid}`);

    const exited = new Promise((resolve) => sleeper!.once('exit', resolve));
    sleeper.kill('SIGKILL');
    await exited;
    const warnings: string[] = [];
    const resumed = await run({
      resume: first.runDir,
      onEvent: (e: TrainEvent) => {
        if (e.type === 'warning') warnings.push(e.message);
      },
    });
    expect(resumed.status).toBe('finished');
    expect(warnings).toContain(`${lock}: taking over the lock of process ${pid}, which is no longer running`);
    expect(existsSync(lock)).toBe(false);
  });
});

describe('the CLI: signals and --max-steps stop with exit 3 and a usable checkpoint', () => {
  const labeled = path.join(work, 'images');
  const recipeFile = path.join(work, 'tiny-rotation.yaml');
  const probeRecipe = path.join(work, 'probe.yaml');
  const runs = path.join(work, 'runs');

  beforeAll(async () => {
    await ensureBuilt();
    await writeClassFolders(labeled, 6, 1);
    writeFileSync(
      recipeFile,
      [
        'name: tiny-rotation',
        'task:',
        '  id: rotation',
        '  options: {mode: all-four, head: linear}',
        'backbone: {arch: resnet18, stem: small, widthMultiplier: 0.125}',
        'input: {size: 16, channels: 1}',
        'data: {batchSize: 4}',
        'train:',
        '  epochs: 500',
        '  optimizer: {name: sgd, lr: 0.01, momentum: 0.9}',
        '',
      ].join('\n'),
    );
    writeFileSync(probeRecipe, 'name: probe\nstages:\n  - epochs: 1\n    trainable: [head]\ntrain:\n  batchSize: 4\n');
  });

  async function cli(...argv: string[]) {
    let stdout = '';
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      stdout += chunk.toString();
      return true;
    });
    vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      return { code: await main([...argv, '--quiet']), stdout };
    } finally {
      vi.restoreAllMocks();
    }
  }

  /** The stopped run's weights are usable by export, embed and finetune. */
  async function expectUsable(runDir: string, name: string) {
    expect(
      (await cli('export', runDir, '--format', 'safetensors', '--out', path.join(work, `${name}-export`))).code,
    ).toBe(0);
    expect(
      (await cli('embed', runDir, '--data', labeled, '--out', path.join(work, `${name}-embed`), '--no-map')).code,
    ).toBe(0);
    const finetuned = await cli(
      'finetune',
      probeRecipe,
      '--backbone',
      runDir,
      '--labels',
      labeled,
      '--out',
      path.join(work, `${name}-model`),
    );
    expect(finetuned.code).toBe(0);
  }

  it('pretrain --max-steps 2: exit 3, status stopped, a checkpoint that resume and export/embed/finetune use', async () => {
    const r = await cli(
      'pretrain',
      recipeFile,
      '--data',
      labeled,
      '--out',
      runs,
      '--run-id',
      'max',
      '--max-steps',
      '2',
      '--json',
    );
    expect(r.code).toBe(3);
    expect(JSON.parse(r.stdout).status).toBe('stopped');
    const runDir = path.join(runs, 'max');
    expect(readFileSync(path.join(runDir, 'checkpoints', 'last'), 'utf8').trim()).toBe('ckpt-000000002');
    await expectUsable(runDir, 'max');
    const resumed = await cli('pretrain', '--resume', runDir, '--max-steps', '1');
    expect(resumed.code).toBe(3);
    expect(readFileSync(path.join(runDir, 'checkpoints', 'last'), 'utf8').trim()).toBe('ckpt-000000003');
  }, 120_000);

  for (const signal of ['SIGTERM', 'SIGHUP', 'SIGINT'] as const) {
    it(`${signal} during training: checkpoint, status "stopped", exit 3`, async () => {
      const runId = `signal-${signal}`;
      const child = spawn(
        process.execPath,
        [
          path.join(ROOT, 'bin/selfsup.js'),
          'pretrain',
          recipeFile,
          '--data',
          labeled,
          '--out',
          runs,
          '--run-id',
          runId,
        ],
        { cwd: ROOT, env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '2' }, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let stderr = '';
      const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      child.stderr.on('data', (d) => {
        const before = stderr;
        stderr += d;
        // The loop has started (it printed "Starting <run>"): stop it.
        if (!before.includes('Starting ') && stderr.includes('Starting ')) child.kill(signal);
      });
      const code = await exit;
      expect(stderr).toContain('stopping after this step and writing a checkpoint');
      expect(code).toBe(3);
      const runDir = path.join(runs, runId);
      const status = JSON.parse(readFileSync(path.join(runDir, 'status.json'), 'utf8'));
      expect(status).toMatchObject({ status: 'stopped', message: 'interrupted' });
      expect(existsSync(path.join(runDir, 'checkpoints', 'last'))).toBe(true);
      expect(existsSync(path.join(runDir, RUN_LOCK_FILE))).toBe(false);
      if (signal === 'SIGTERM') await expectUsable(runDir, 'sigterm');
    }, 120_000);
  }

  it('SIGTERM mid-epoch on cached in-memory images stops within a few steps, not at the epoch end', async () => {
    // 2,000 generated 16x16 images in one IDX file, decoded once and cached: no await in the loop
    // ever waits for I/O, so the signal handler runs only if the loop lets the event loop turn.
    const count = 2000;
    const idx = Buffer.alloc(16 + count * 256);
    idx.writeUInt32BE(0x00000803, 0);
    idx.writeUInt32BE(count, 4);
    idx.writeUInt32BE(16, 8);
    idx.writeUInt32BE(16, 12);
    for (let i = 16; i < idx.length; i++) idx[i] = (i * 2654435761) >>> 24;
    const idxFile = path.join(work, 'cached-images-idx3-ubyte');
    writeFileSync(idxFile, idx);
    const cachedRecipe = path.join(work, 'tiny-rotation-cached.yaml');
    writeFileSync(
      cachedRecipe,
      readFileSync(recipeFile, 'utf8').replace('data: {batchSize: 4}', 'data: {batchSize: 4, cacheSize: 4096}'),
    );
    const child = spawn(
      process.execPath,
      [
        path.join(ROOT, 'bin/selfsup.js'),
        'pretrain',
        cachedRecipe,
        '--data',
        idxFile,
        '--out',
        runs,
        '--run-id',
        'cached',
      ],
      { cwd: ROOT, env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '2' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    let sent = false;
    const exit = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    child.stderr.on('data', (d) => {
      stderr += d;
      // A progress line with a step count above 0: the loop is running on cached batches.
      if (!sent && /pretrain [1-9]\d*\//.test(stderr)) {
        sent = true;
        child.kill('SIGTERM');
      }
    });
    const code = await exit;
    expect(code).toBe(3);
    const status = JSON.parse(readFileSync(path.join(runs, 'cached', 'status.json'), 'utf8'));
    expect(status).toMatchObject({ status: 'stopped', message: 'interrupted', epoch: 0 });
    // 500 steps per epoch; the stop came long before the epoch's end.
    expect(status.step).toBeGreaterThan(0);
    expect(status.step).toBeLessThan(500);
  }, 240_000);
});
