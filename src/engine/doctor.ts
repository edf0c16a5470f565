/** `selfsup doctor`: what the engine is and how fast it convolves. */

import { createRequire } from 'node:module';
import os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { type EngineInfo, type EngineOptions, initEngine } from './backend.js';
import { cpuBfloat16Features, cpuRunsBfloat16, type GraphRuntimeStatus, graphRuntimeStatus } from './graph-runtime.js';
import { describeNativePackage, GPU_PACKAGE, gpuSystemProblem, listedGpus, type NativeRuntime } from './native.js';

const require = createRequire(import.meta.url);

export interface SpeedCheck {
  /** What was timed. */
  op: string;
  /** Where TensorFlow ran it. */
  device: 'GPU' | 'CPU';
  shape: { batch: number; size: number; channels: number; kernel: number };
  iterations: number;
  seconds: number;
  gflops: number;
}

export interface DoctorReport {
  engine: EngineInfo;
  node: string;
  platform: string;
  cpuModel: string;
  totalMemoryGiB: number;
  sharp?: { version: string; libvips: string };
  gpu: {
    /** GPUs the NVIDIA driver lists (`nvidia-smi -L`). */
    listed: string[];
    /** Why no GPU is used (undefined when one is). */
    problem?: string;
    /** The GPU package, when installed (whether or not it is the one loaded). */
    package?: NativeRuntime;
  };
  speed?: SpeedCheck;
  /** The compiled training step (graph addon) and the precision it would run in. */
  graph: GraphRuntimeStatus & {
    /** CPU features that make bfloat16 pay (avx512_bf16, amx_bf16). */
    bfloat16Features: string[];
    /** Whether TensorFlow runs bfloat16 graphs on this CPU at all (AVX-512). */
    runsBfloat16: boolean;
    /** What `train.precision: auto` resolves to on this machine when the step is compiled. */
    autoPrecision: 'float32' | 'bfloat16';
  };
}

/**
 * Times a 3x3 convolution (forward) for about `seconds` seconds and returns
 * its rate in GFLOP/s (2 FLOPs per multiply-add).
 */
export function convSpeedCheck(seconds = 3, batch = 16, size = 56, channels = 64): SpeedCheck {
  const kernel = 3;
  const x = tf.randomNormal([batch, size, size, channels]) as tf.Tensor4D;
  const w = tf.randomNormal([kernel, kernel, channels, channels]) as tf.Tensor4D;
  const run = () => tf.tidy(() => tf.conv2d(x, w, 1, 'same').sum().dataSync());
  run(); // warm-up: kernel selection, allocations
  let iterations = 0;
  const start = process.hrtime.bigint();
  let elapsed = 0;
  while (elapsed < seconds || iterations < 2) {
    run();
    iterations++;
    elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  }
  x.dispose();
  w.dispose();
  const flops = 2 * batch * size * size * channels * channels * kernel * kernel * iterations;
  const usesGpu = (tf.backend() as unknown as { isUsingGpuDevice?: boolean }).isUsingGpuDevice === true;
  return {
    op: 'conv2d 3x3 stride 1 forward',
    device: usesGpu ? 'GPU' : 'CPU',
    shape: { batch, size, channels, kernel },
    iterations,
    seconds: elapsed,
    gflops: flops / elapsed / 1e9,
  };
}

export async function runDoctor(
  options: EngineOptions & { speedSeconds?: number; skipSpeed?: boolean } = {},
): Promise<DoctorReport> {
  const engine = initEngine({ backend: options.backend, quiet: true });
  let sharpInfo: DoctorReport['sharp'];
  try {
    const sharp = require('sharp') as { versions: { sharp?: string; vips: string } };
    sharpInfo = { version: sharp.versions.sharp ?? 'unknown', libvips: sharp.versions.vips };
  } catch {
    sharpInfo = undefined;
  }
  const report: DoctorReport = {
    engine,
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    totalMemoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    sharp: sharpInfo,
    graph: (() => {
      const bfloat16Features = cpuBfloat16Features();
      const status = engine.native
        ? graphRuntimeStatus()
        : ({ available: false, reason: 'it needs native TensorFlow' } as const);
      return {
        ...status,
        bfloat16Features,
        runsBfloat16: cpuRunsBfloat16(),
        autoPrecision: bfloat16Features.length ? 'bfloat16' : 'float32',
      } as const;
    })(),
    gpu: {
      listed: listedGpus(),
      ...(engine.gpu ? {} : { problem: engine.gpuProblem ?? gpuSystemProblem() ?? 'the GPU package is not installed' }),
      ...(describeNativePackage(GPU_PACKAGE) ? { package: describeNativePackage(GPU_PACKAGE) } : {}),
    },
  };
  if (!options.skipSpeed) {
    // Pure JS is thousands of times slower: keep its check tiny.
    report.speed = engine.native
      ? convSpeedCheck(options.speedSeconds ?? 3)
      : convSpeedCheck(options.speedSeconds ?? 1, 1, 14, 16);
  }
  return report;
}

function describeCuda(rt: NativeRuntime): string {
  if (!rt.cudaBuild) return 'no';
  const part = (name: string, v?: { version: string; library: string; found: boolean }) =>
    v ? `${name} ${v.version} (${v.library} ${v.found ? 'found' : 'MISSING'})` : undefined;
  const parts = [part('CUDA runtime', rt.cuda), part('cuDNN', rt.cudnn)].filter(Boolean);
  return `yes${parts.length ? `: ${parts.join(', ')}` : ' (CUDA and cuDNN from the system)'}`;
}

function describeGraph(g: DoctorReport['graph']): string {
  const precision =
    g.autoPrecision === 'bfloat16'
      ? `train.precision auto -> bfloat16 (the CPU has ${g.bfloat16Features.join(', ')})`
      : `train.precision auto -> float32 (the CPU has neither AVX512-BF16 nor AMX${g.runsBfloat16 ? '' : '; bfloat16 is unavailable: no AVX-512'})`;
  return g.available
    ? `available (graph addon on TensorFlow ${g.version}): pretraining and finetuning runs with train.compile auto|on use it where they can; ${precision}; evaluation, embedding and feature extraction run compiled forward passes (float32 unless asked)`
    : `unavailable, runs use the eager step and forward pass in float32: ${g.reason}`;
}

export function formatDoctorReport(r: DoctorReport): string {
  const e = r.engine;
  const rt = e.runtime;
  const gpuLine = e.gpu
    ? `yes: ${r.gpu.listed.join('; ') || 'in use by TensorFlow'}`
    : `none used: ${r.gpu.problem ?? 'unknown'}${r.gpu.listed.length ? ` (the driver lists ${r.gpu.listed.join('; ')})` : ''}`;
  const lines = [
    `backend            ${e.backend} (${e.provider})${e.native ? '' : '  <-- pure JS: slow'}`,
    `native package     ${rt ? `${rt.package}, TensorFlow from ${rt.source}` : 'none (pure JS)'}`,
    `CUDA build         ${rt ? describeCuda(rt) : 'n/a'}`,
    `TensorFlow         ${e.tensorflowVersion ?? 'none (pure JS)'}`,
    `TensorFlow.js      ${e.tfjsVersion}`,
    `GPU                ${gpuLine}`,
  ];
  const gp = r.gpu.package;
  if (gp && gp.package !== rt?.package) {
    lines.push(`GPU package        ${gp.package} installed, not loaded; CUDA build ${describeCuda(gp)}`);
  }
  lines.push(
    `threads            intra-op ${e.intraOpThreads}, inter-op ${e.interOpThreads} (cpus: ${e.cpus})`,
    `oneDNN kernels     ${e.native ? (e.oneDnn ? 'on (TF_ENABLE_ONEDNN_OPTS=1)' : 'off (TF_ENABLE_ONEDNN_OPTS=0)') : 'n/a'}`,
    `compiled step      ${describeGraph(r.graph)}`,
    `sharp / libvips    ${r.sharp ? `${r.sharp.version} / ${r.sharp.libvips}` : 'not installed'}`,
    `node               ${r.node} on ${r.platform}`,
    `cpu                ${r.cpuModel}, ${r.totalMemoryGiB} GiB`,
  );
  if (r.speed) {
    const s = r.speed;
    lines.push(
      `speed check        on the ${s.device}: ${s.op}, [${s.shape.batch}, ${s.shape.size}, ${s.shape.size}, ${s.shape.channels}]: ` +
        `${s.gflops.toFixed(1)} GFLOP/s (${s.iterations} runs in ${s.seconds.toFixed(2)} s)`,
    );
  }
  for (const note of e.notes) lines.push(`note               ${note}`);
  return lines.join('\n');
}
