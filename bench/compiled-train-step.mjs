#!/usr/bin/env node
/**
 * Training-step throughput of the compiled step (src/train/compiled-step.ts:
 * one TensorFlow graph in a session, float32 and bfloat16) against selfsup's
 * eager step (step.ts's lossAndGradients + optimizers.ts's SGD) and PyTorch
 * (bench/torch_train_step.py, channels_last), interleaved in rounds, same
 * threads for all. SGD momentum 0.9, Nesterov, weight decay 5e-4 (--optimizer lars: LARS
 * with the same momentum and decay, trust coefficient 0.001, lr 0.3; --optimizer adam or
 * adamw: lr 1e-3, betas 0.9/0.999, weight decay 0.05 as recipes/base/optim-adamw.yaml,
 * each parameter's update count fed to the compiled step as the pretraining loop does). The task is
 * rotation (random-one: the batch stays B images, 4-way linear head) unless
 * --task names a two-view method with a compiled step (contrastive or simclr,
 * barlow-twins, vicreg, simsiam, byol, moco): then each step takes two views of B images
 * (2B backbone images), with the task options of its small-image recipe
 * (recipes/<method>-small.yaml), and PyTorch is not run (its script trains a classifier).
 * BYOL and MoCo also run their momentum target (train/task-state.ts: the target's
 * forward passes, then the EMA at the recipe's starting momentum; MoCo's queue), eager
 * as the loop runs it and compiled in the session.
 *
 *   npm run build && nice -n 10 node bench/compiled-train-step.mjs \
 *     [--rounds 3] [--steps 3] [--threads 2] [--only resnet18|resnet50] [--task rotation|simclr|barlow-twins|vicreg|simsiam|byol|moco] \
 *     [--width 1] [--optimizer sgd|lars|adam|adamw] [--python /path/to/python-with-torch[,/another/python]] [--no-torch] [--variants compiled-f32,compiled-bf16,eager]
 *
 * img/s counts the batch's B images (two views each for a two-view task); GFLOP/s
 * is 3 x the backbone's forward FLOPs of every image it sees (projectors not counted).
 *
 * --python takes a comma-separated list, e.g. a current PyTorch in a virtualenv and
 * Debian's PyTorch 1.13 (/usr/bin/python3): each runs in every round, in that order.
 *
 * Prints one line per measurement with the load average, then per case the
 * median ratios over rounds. CPU seconds per wall second show how many threads
 * each side really used.
 */
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : fallback;
};
const steps = Number(option('steps', '3'));
const rounds = Number(option('rounds', '3'));
const threads = Number(option('threads', '2'));
const only = option('only', undefined);
const pythons = option('python', '/usr/bin/python3').split(',');
const useTorch = !args.includes('--no-torch');
const variants = option('variants', 'compiled-f32,compiled-bf16,eager').split(',');
const taskName = option('task', 'rotation');
const widthMultiplier = Number(option('width', '1'));
const optimizerName = option('optimizer', 'sgd');
const adam = optimizerName === 'adam' || optimizerName === 'adamw';
if (!['sgd', 'lars', 'adam', 'adamw'].includes(optimizerName)) {
  console.error(`Expected sgd, lars, adam or adamw for --optimizer but received ${optimizerName}`);
  process.exit(2);
}
/** The small-image recipe whose task options a two-view task runs with. */
const TWO_VIEW_RECIPES = {
  contrastive: 'simclr-small.yaml',
  simclr: 'simclr-small.yaml',
  'barlow-twins': 'barlow-twins-small.yaml',
  vicreg: 'vicreg-small.yaml',
  simsiam: 'simsiam-small.yaml',
  byol: 'byol-small.yaml',
  moco: 'moco-small.yaml',
};
if (taskName !== 'rotation' && !TWO_VIEW_RECIPES[taskName]) {
  console.error(
    `Expected one of rotation, ${Object.keys(TWO_VIEW_RECIPES).join(', ')} for --task but received ${taskName}`,
  );
  process.exit(2);
}
if (!(widthMultiplier > 0)) {
  console.error(`Expected a number > 0 for --width but received ${option('width')}`);
  process.exit(2);
}

process.env.TF_ENABLE_ONEDNN_OPTS ??= '1';
process.env.TF_NUM_INTRAOP_THREADS = String(threads);
process.env.TF_NUM_INTEROP_THREADS = '1';
const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const tf = await import('@tensorflow/tfjs');
const { initEngine } = await import(path.join(root, 'dist/src/engine/index.js'));
const { graphRuntimeStatus, cpuBfloat16Features } = await import(path.join(root, 'dist/src/engine/graph-runtime.js'));
const { ResNet } = await import(path.join(root, 'dist/src/backbones/resnet.js'));
const { rotationTask } = await import(path.join(root, 'dist/pretext-tasks/rotation.js'));
const { getTask } = await import(path.join(root, 'dist/pretext-tasks/registry.js'));
const { loadPretrainRecipe } = await import(path.join(root, 'dist/src/recipes/pretrain-recipe.js'));
const { CompiledTrainingStep } = await import(path.join(root, 'dist/src/train/compiled-step.js'));
const { createOptimizer } = await import(path.join(root, 'dist/src/train/optimizers.js'));
const { lossAndGradients } = await import(path.join(root, 'dist/src/train/step.js'));
const { TaskState } = await import(path.join(root, 'dist/src/train/task-state.js'));
const { createRng } = await import(path.join(root, 'dist/src/util/rng.js'));
const { forwardFlops } = await import('./resnet-flops.mjs');

const CASES = [
  { arch: 'resnet18', stem: 'small', size: 32, batch: 128, width: widthMultiplier },
  { arch: 'resnet50', stem: 'imagenet', size: 224, batch: 16, width: widthMultiplier },
].filter((c) => !only || c.arch === only);

const optimizer = {
  name: optimizerName,
  lr: optimizerName === 'lars' ? 0.3 : adam ? 0.001 : 0.01,
  momentum: 0.9,
  nesterov: true,
  weightDecay: adam ? 0.05 : 5e-4,
  betas: [0.9, 0.999],
  eps: 1e-8,
  trustCoefficient: 0.001,
};
const recipeFile = TWO_VIEW_RECIPES[taskName];
const recipeTask = recipeFile ? loadPretrainRecipe(path.join(root, 'recipes', recipeFile), getTask).task : undefined;
const task = recipeTask ? getTask(recipeTask.id) : rotationTask;
const taskOptions = recipeTask ? recipeTask.options : rotationTask.validate({ mode: 'random-one', head: 'linear' });
/** Views per image in a step: the backbone sees views x B images. */
const viewCount = recipeFile ? 2 : 1;
/** A momentum target's position: the first of 1000 steps (m at the recipe's start, so the EMA runs). */
const PROGRESS = { globalStep: 0, totalSteps: 1000, epoch: 0, epochs: 1, stepsPerEpoch: 1000 };

function model(c) {
  const config = { arch: c.arch, inputChannels: 3, widthMultiplier: c.width, stem: c.stem };
  const backbone = new ResNet(config, 'kaiming', createRng(1));
  const heads = task.createHeads(taskOptions, backbone.featureDim, createRng(2));
  // BYOL's and MoCo's target and queue (nothing for the other tasks).
  const state = TaskState.create({
    task,
    taskOptions,
    backbone,
    heads,
    createBackbone: () => new ResNet(config, 'kaiming', createRng(6)),
    rng: createRng(7),
  });
  const modules = task.headModules(heads);
  const all = [
    ...backbone.variables().map((v) => ({ ...v, name: `backbone.${v.name}` })),
    ...Object.entries(modules).flatMap(([key, head]) =>
      head.variables().map((v) => ({ ...v, name: `heads.${key}.${v.name}` })),
    ),
  ];
  const params = all.filter((v) => v.trainable).map((v) => ({ name: v.name, variable: v.variable, kind: v.kind }));
  const sgd = createOptimizer(optimizer, params);
  const slots = new Map(sgd.stateVariables().map((s) => [s.name, s.variable]));
  const rng = createRng(3);
  const views = Array.from({ length: viewCount }, () =>
    tf.tensor4d(
      Float32Array.from({ length: c.batch * c.size * c.size * 3 }, () => rng.uniform(-1, 1)),
      [c.batch, c.size, c.size, 3],
    ),
  );
  return {
    backbone,
    heads,
    modules,
    params,
    sgd,
    views,
    state,
    mirrored: all.map((v) => {
      const first = slots.get(`optimizer.m.${v.name}`);
      const second = slots.get(`optimizer.v.${v.name}`);
      return {
        ...v,
        momentum: slots.get(`optimizer.momentum.${v.name}`),
        adam: first && second ? { m: first, v: second } : undefined,
      };
    }),
    dispose() {
      state.dispose();
      backbone.dispose();
      for (const h of Object.values(modules)) h.dispose();
      sgd.dispose();
      tf.dispose(views);
    },
  };
}

/** Seconds and CPU seconds of `steps` calls of `step` after one warm-up call. */
function timeSteps(step) {
  step();
  const times = [];
  let cpu = 0;
  for (let i = 0; i < steps; i++) {
    const start = process.hrtime.bigint();
    const cpuStart = process.cpuUsage();
    step();
    const used = process.cpuUsage(cpuStart);
    cpu += (used.user + used.system) / 1e6;
    times.push(Number(process.hrtime.bigint() - start) / 1e9);
  }
  const seconds = times.reduce((a, b) => a + b, 0);
  return { seconds, cpuPerWall: cpu / seconds, stepTimes: times.map((t) => +t.toFixed(3)) };
}

function measureEager(c) {
  const m = model(c);
  try {
    const before = tf.memory().numTensors;
    const result = timeSteps(() => {
      const grads = lossAndGradients(
        m.params,
        () => {
          const out = task.step(
            {
              ...m.state.context(PROGRESS),
              backbone: m.backbone,
              heads: m.heads,
              views: m.views,
              training: true,
              rng: createRng(5),
            },
            taskOptions,
          );
          return { loss: out.loss, keep: out.bufferUpdates };
        },
        0,
      );
      grads.loss.dataSync();
      tf.tidy(() => m.sgd.apply(grads.grads, optimizer.lr));
      m.state.update(grads.kept, PROGRESS); // the loop's order: buffers, then the EMA
      grads.dispose();
    });
    return { ...result, leaked: tf.memory().numTensors - before };
  } finally {
    m.dispose();
  }
}

function measureCompiled(c, precision) {
  const m = model(c);
  const buildStart = process.hrtime.bigint();
  const step = new CompiledTrainingStep({
    task,
    taskOptions,
    backbone: m.backbone,
    heads: m.modules,
    variables: m.mirrored,
    optimizer,
    gradClipNorm: 0,
    imageShape: [c.size, c.size, 3],
    precision,
    intraOpThreads: threads,
    interOpThreads: 1,
    state: m.state.compiledState(),
    optimizers: ['sgd', 'lars', 'adam', 'adamw'],
  });
  const buildSeconds = Number(process.hrtime.bigint() - buildStart) / 1e9;
  try {
    const before = tf.memory().numTensors;
    const momentum = m.state.momentum(PROGRESS);
    // Adam's bias correction: each parameter's own update count, counted after each step (as the loop does).
    const updateCount = (name) => m.sgd.updateCount(name) + 1;
    const result = timeSteps(() => {
      const out = step.run(m.views, createRng(5), optimizer.lr, false, updateCount, momentum);
      m.sgd.countUpdate(step.updatedNames);
      return out;
    });
    return { ...result, buildSeconds, leaked: tf.memory().numTensors - before };
  } finally {
    step.dispose();
    m.dispose();
  }
}

function measureTorch(python, c) {
  const r = spawnSync(
    python,
    [
      path.join(root, 'bench/torch_train_step.py'),
      ...['--arch', c.arch, '--stem', c.stem, '--size', String(c.size), '--batch', String(c.batch)],
      ...['--steps', String(steps), '--threads', String(threads), '--classes', '4', '--channels-last'],
    ],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) return { error: (r.stderr || r.error?.message || 'failed').trim().split('\n').pop() };
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

const load = () =>
  os
    .loadavg()
    .map((v) => v.toFixed(1))
    .join(' ');
const engine = initEngine({ quiet: true });
const graph = graphRuntimeStatus();
// PyTorch's script trains a full-width classifier: compared on the rotation task at width 1 only.
const torches = (useTorch && task === rotationTask && widthMultiplier === 1 ? pythons : [])
  .map((python) => ({
    python,
    version: spawnSync(python, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' }).stdout?.trim(),
  }))
  .filter((t) => t.version);
console.log(
  `engine ${engine.backend} (TensorFlow ${engine.tensorflowVersion}), graph addon ${graph.available ? graph.version : graph.reason}, ` +
    `bfloat16 CPU features: ${cpuBfloat16Features().join(', ') || 'none'}; threads ${threads}; PyTorch ${torches.map((t) => `${t.version} (${t.python})`).join(', ') || 'n/a'}; cpus ${os.cpus().length}`,
);
console.log(
  `task ${task.id}${recipeFile ? ` (options of recipes/${recipeFile}: ${JSON.stringify(taskOptions)}; ${viewCount} views of B images per step)` : ' (random-one, linear head)'}; width ${widthMultiplier}; optimizer ${optimizerName}`,
);
console.log(`load average at start: ${load()}`);
const results = [];
for (let round = 0; round < rounds; round++) {
  for (const c of CASES) {
    const flops = 3 * viewCount * forwardFlops(c, 4);
    const name = `${c.arch}${c.width === 1 ? '' : ` x${c.width}`} ${c.size}px batch ${c.batch}`;
    const row = { round, case: name, imagesPerSecond: {}, imagesPerCpuSecond: {} };
    const record = (variant, r) => {
      if (r.error) {
        console.log(`  ${name} ${variant}: ${r.error}`);
        return;
      }
      const ips = r.images_per_second ?? (c.batch * steps) / r.seconds;
      const cpuPerWall = r.cpuPerWall ?? r.cpu_seconds / r.seconds;
      row.imagesPerSecond[variant] = ips;
      row.imagesPerCpuSecond[variant] = ips / cpuPerWall;
      const extra = ` cpu/wall ${cpuPerWall.toFixed(2)} (${(ips / cpuPerWall).toFixed(1)} img per CPU-s)`;
      const build = r.buildSeconds ? ` build ${r.buildSeconds.toFixed(1)} s` : '';
      const leak = r.leaked ? ` LEAKED ${r.leaked} tensors` : '';
      console.log(
        `round ${round} ${name} ${variant.padEnd(13)} ${ips.toFixed(1).padStart(6)} img/s ${((flops * ips) / 1e9).toFixed(0).padStart(4)} GFLOP/s` +
          ` steps ${(r.stepTimes ?? r.step_times.map((t) => +t.toFixed(3))).join(' ')}${extra}${build}${leak} [load ${load()}]`,
      );
    };
    for (const t of torches) record(`torch-${t.version}`, measureTorch(t.python, c));
    for (const v of variants) {
      if (v === 'eager') record(v, measureEager(c));
      else if (v === 'compiled-f32') record(v, measureCompiled(c, 'float32'));
      else if (v === 'compiled-bf16') record(v, measureCompiled(c, 'bfloat16'));
    }
    results.push(row);
  }
}
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
console.log(`load average at end: ${load()}`);
for (const c of CASES) {
  const name = `${c.arch}${c.width === 1 ? '' : ` x${c.width}`} ${c.size}px batch ${c.batch}`;
  const rows = results.filter((r) => r.case === name);
  const keys = Object.keys(rows[0]?.imagesPerSecond ?? {});
  const bases = [...keys.filter((k) => k.startsWith('torch')), 'eager'].filter((k) => keys.includes(k));
  for (const base of bases)
    for (const k of keys) {
      if (k === base || k.startsWith('torch')) continue;
      for (const [what, field] of [
        ['img/s', 'imagesPerSecond'],
        ['img per CPU-s', 'imagesPerCpuSecond'],
      ]) {
        const ratios = rows.filter((r) => r[field][k] && r[field][base]).map((r) => r[field][k] / r[field][base]);
        if (ratios.length)
          console.log(
            `${name}: ${k} / ${base} (${what}) per round ${ratios.map((x) => x.toFixed(2)).join(' ')}, median ${median(ratios).toFixed(2)}`,
          );
      }
    }
}
