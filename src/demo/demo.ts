/**
 * `selfsup demo`: the main job end to end on the Fashion-MNIST sample shipped in
 * data/fashion-mnist-demo/: scan the unlabeled dump, pretrain briefly, export
 * (safetensors + tfjs), finetune on the labeled folders and report on the test
 * folders, embed the test images. Every step is a library call of its own.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { getTask } from '../../pretext-tasks/registry.js';
import { scanFolder } from '../data/scan.js';
import { embedFolder } from '../embed/embed-folder.js';
import { exportBackbone } from '../export/backbone-store.js';
import { runFinetune } from '../finetune/run.js';
import { resolveFinetuneRecipe } from '../recipes/finetune-recipe.js';
import { deepMerge, readRecipeTree } from '../recipes/load.js';
import { resolvePretrainRecipe } from '../recipes/pretrain-recipe.js';
import { pretrain } from '../train/loop.js';
import { writeFileAtomic } from '../util/atomic.js';
import { InputError } from '../util/errors.js';
import { beginOutputDir, OUTPUT_MARKER, readOutputMarker } from '../util/output-dir.js';
import { packageRoot } from '../util/package-root.js';

export interface DemoOptions {
  /** Output folder (default `runs/demo`). Re-running replaces a previous demo there. */
  out?: string;
  /** A much smaller budget (fewer images, one short epoch): a smoke test in well under a minute. */
  quick?: boolean;
  /** The demo data folder (default: data/fashion-mnist-demo of this package). */
  data?: string;
  seed?: number;
  /** Progress bars on stderr (default true). */
  progress?: boolean;
  /** Called when a step starts: its number, the count, and a title. */
  onStep?: (step: number, steps: number, title: string) => void;
}

/** Where each output of the demo is. */
export interface DemoOutputs {
  manifest: string;
  run: string;
  checkpoint?: string;
  metrics: string;
  curves: string;
  backbone: string;
  exportSafetensors: string;
  exportTfjs: string;
  finetune?: string;
  report?: string;
  confusion?: string;
  embeddings: string;
  map?: string;
}

export interface DemoResult {
  out: string;
  quick: boolean;
  seconds: number;
  steps: Array<{ name: string; seconds: number; summary: string }>;
  outputs: DemoOutputs;
}

const MARKER = 'demo.json';

/**
 * The demo's budget, laid over the shipped recipes (recipes/rotation-small.yaml
 * for pretraining, recipes/finetune-full.yaml for finetuning) so that the whole
 * job takes minutes on a 2-core CPU. Each value is a plain override with a reason.
 */
export function demoOverrides(quick: boolean, seed: number) {
  return {
    pretrain: {
      name: 'demo',
      seed,
      // A quarter-width ResNet-18 (16-128 channels): the full width takes ~16x the time.
      backbone: { widthMultiplier: quick ? 0.125 : 0.25 },
      // Fashion-MNIST is 28 px: no need to resize up to 32.
      input: { size: 28 },
      data: { batchSize: quick ? 32 : 64, limit: quick ? 256 : null },
      train: { epochs: quick ? 1 : 3, maxStepsPerEpoch: quick ? 4 : null },
      // The kNN monitor on 500 labeled test images after every epoch (cheap at this size).
      monitor: { knn: { bankImages: 500, queryImages: 500 } },
    },
    finetune: {
      seed,
      // finetune-full.yaml's linear probe, then every layer at one rate, for fewer epochs.
      stages: quick ? [{ epochs: 1, trainable: ['head'] }] : [{ epochs: 6, trainable: ['all'] }],
    },
  };
}

function isOldDemoResult(file: string): boolean {
  try {
    return typeof JSON.parse(readFileSync(file, 'utf8'))?.quick === 'boolean';
  } catch {
    return false;
  }
}

/** What the demo writes into its folder. */
const DEMO_OUTPUTS = ['scan', 'pretrain', 'export', 'finetune', 'embed', MARKER];

/**
 * Makes `out` ready (util/output-dir.ts): refuses a non-empty folder the demo did not
 * make, clears a previous demo's outputs (and only those), keeps anything else.
 */
async function prepareOut(out: string, data: string): Promise<void> {
  // A demo folder from before output markers: its demo.json says the demo made it.
  if (isOldDemoResult(path.join(out, MARKER)) && !readOutputMarker(out)) {
    await writeFileAtomic(
      path.join(out, OUTPUT_MARKER),
      `${JSON.stringify({ format: 'selfsup-output', kind: 'demo', files: DEMO_OUTPUTS, writtenAt: new Date().toISOString() })}\n`,
    );
  }
  await beginOutputDir(
    out,
    { kind: 'demo', overwrite: true, inputs: [{ path: data, option: '--data' }] },
    DEMO_OUTPUTS,
  );
}

/** Runs the demo; see {@link DemoOptions}. */
export async function runDemo(options: DemoOptions = {}): Promise<DemoResult> {
  const started = Date.now();
  const quick = options.quick ?? false;
  const seed = options.seed ?? 0;
  const out = path.resolve(options.out ?? path.join('runs', 'demo'));
  const data = path.resolve(options.data ?? path.join(packageRoot(), 'data', 'fashion-mnist-demo'));
  const test = path.join(data, 'test');
  for (const sub of ['unlabeled', 'labeled', 'test']) {
    if (!existsSync(path.join(data, sub))) {
      throw new InputError(
        path.join(data, sub),
        'missing: the demo data folder needs unlabeled/, labeled/ and test/ (they ship in the git repository, not in the npm package; pass --data <folder>)',
      );
    }
  }
  await prepareOut(out, data);
  await writeFileAtomic(
    path.join(out, MARKER),
    `${JSON.stringify({ startedAt: new Date().toISOString(), quick }, null, 2)}\n`,
  );
  const steps: DemoResult['steps'] = [];
  const total = 5;
  let stepNumber = 0;
  const step = async <T>(name: string, title: string, work: () => Promise<T>, summarize: (r: T) => string) => {
    stepNumber++;
    options.onStep?.(stepNumber, total, title);
    const t0 = Date.now();
    const result = await work();
    steps.push({ name, seconds: (Date.now() - t0) / 1000, summary: summarize(result) });
    return result;
  };
  const progress = options.progress ?? true;

  const manifest = path.join(out, 'scan', 'manifest.arrow');
  // --quick scans one of the four parts of the dump.
  const unlabeled = path.join(data, 'unlabeled', ...(quick ? ['part-0'] : []));
  await step(
    'scan',
    `scan ${unlabeled}`,
    () => scanFolder(unlabeled, { out: manifest, progress }),
    (s) => `${s.ok} images ok, ${s.bad} bad (recorded with their reason and skipped)`,
  );

  const root = packageRoot();
  const overrides = demoOverrides(quick, seed);
  const pretrainRecipeFile = path.join(root, 'recipes', 'rotation-small.yaml');
  const recipe = resolvePretrainRecipe(
    deepMerge(readRecipeTree(pretrainRecipeFile), overrides.pretrain),
    getTask,
    pretrainRecipeFile,
  );
  const run = await step(
    'pretrain',
    `pretrain ${recipe.backbone.arch} (width ${recipe.backbone.widthMultiplier}) with the ${recipe.task.id} task, ${recipe.train.epochs} epoch(s)`,
    () =>
      pretrain(recipe, {
        dataPath: manifest,
        outDir: out,
        runId: 'pretrain',
        // The kNN monitor (accuracy on labeled test images) is skipped by --quick.
        validationPath: quick ? undefined : test,
        progress,
      }),
    (r) => {
      const last = r.losses.at(-1);
      return `${r.status}, ${r.losses.length} steps, last loss ${last === undefined ? '-' : last.toFixed(3)}`;
    },
  );

  const exportSafetensors = path.join(out, 'export', 'safetensors');
  const exportTfjs = path.join(out, 'export', 'tfjs');
  await step(
    'export',
    'export the backbone (safetensors for PyTorch, tfjs LayersModel for the browser)',
    async () => {
      await exportBackbone(run.runDir, 'safetensors', exportSafetensors);
      await exportBackbone(run.runDir, 'tfjs', exportTfjs);
    },
    () => `${exportSafetensors}, ${exportTfjs}`,
  );

  const finetuneRecipeFile = path.join(root, 'recipes', 'finetune-full.yaml');
  const finetuneRecipe = resolveFinetuneRecipe(
    deepMerge(readRecipeTree(finetuneRecipeFile), overrides.finetune),
    finetuneRecipeFile,
  );
  const finetuneOut = path.join(out, 'finetune');
  const finetuned = await step(
    'finetune',
    `finetune on ${path.join(data, 'labeled')} (50 labels per class), report on ${test}`,
    () =>
      runFinetune({
        recipe: finetuneRecipe,
        recipeFile: finetuneRecipeFile,
        backbone: run.runDir,
        labels: path.join(data, 'labeled'),
        test,
        out: finetuneOut,
        progress,
      }),
    (r) =>
      `test accuracy ${(100 * r.accuracy).toFixed(1)}%, macro-F1 ${r.macroF1.toFixed(3)}, ECE ${r.ece.toFixed(3)} (${r.testImages} images)`,
  );

  const embedOut = path.join(out, 'embed');
  const embedded = await step(
    'embed',
    `embed ${test} (near-duplicates, outliers, 2-D map)`,
    () =>
      embedFolder({
        model: exportSafetensors,
        data: test,
        classFolders: true,
        out: embedOut,
        seed,
        limit: quick ? 200 : undefined,
        mapEpochs: quick ? 50 : undefined,
      }),
    (r) => `${r.images} images, ${r.duplicatePairs} near-duplicate pair(s)`,
  );

  const outputs: DemoOutputs = {
    manifest,
    run: run.runDir,
    checkpoint: lastCheckpointDir(run.runDir),
    metrics: path.join(run.runDir, 'metrics.arrow'),
    curves: path.join(run.runDir, 'curves.png'),
    backbone: path.join(run.runDir, 'backbone'),
    exportSafetensors,
    exportTfjs,
    finetune: finetuned.out,
    report: path.join(finetuneOut, 'report', 'report.md'),
    confusion: path.join(finetuneOut, 'report', 'confusion.png'),
    embeddings: embedded.files.embeddings,
    map: embedded.files.map,
  };
  const result: DemoResult = { out, quick, seconds: (Date.now() - started) / 1000, steps, outputs };
  await writeFileAtomic(path.join(out, MARKER), `${JSON.stringify(result, null, 2)}\n`);
  return result;
}

function lastCheckpointDir(runDir: string): string | undefined {
  const pointer = path.join(runDir, 'checkpoints', 'last');
  if (!existsSync(pointer)) return undefined;
  return path.join(runDir, 'checkpoints', readFileSync(pointer, 'utf8').trim());
}

/** What the closing message calls each output, in the order it lists them. */
const OUTPUT_NAMES: Record<keyof DemoOutputs, string> = {
  manifest: 'scan manifest',
  run: 'run folder',
  checkpoint: 'checkpoint',
  metrics: 'metrics',
  curves: 'training curves',
  backbone: 'backbone',
  exportSafetensors: 'export (PyTorch)',
  exportTfjs: 'export (tfjs)',
  finetune: 'finetuned model',
  report: 'report',
  confusion: 'confusion matrix',
  embeddings: 'embeddings',
  map: 'embedding map',
};

/** The demo's closing message: where each output is. */
export function formatDemoResult(r: DemoResult): string {
  const o = r.outputs;
  const lines = [`selfsup demo finished in ${(r.seconds / 60).toFixed(1)} min${r.quick ? ' (--quick)' : ''}.`, ''];
  for (const s of r.steps) lines.push(`  ${s.name.padEnd(9)} ${s.seconds.toFixed(0).padStart(4)} s  ${s.summary}`);
  lines.push('', 'Outputs:');
  for (const [key, name] of Object.entries(OUTPUT_NAMES)) {
    const file = o[key as keyof DemoOutputs];
    if (file) lines.push(`  ${name.padEnd(17)} ${shortPath(file)}`);
  }
  lines.push(
    '',
    'Next: load the export in PyTorch (docs/interop.md), or embed your own images:',
    `  selfsup embed ${shortPath(o.run)} --data <your images> --out <dir>`,
  );
  return lines.join('\n');
}

/** `file` relative to the working directory when it lies inside it, else absolute. */
function shortPath(file: string): string {
  const relative = path.relative(process.cwd(), file);
  return relative && !relative.startsWith('..') && !path.isAbsolute(relative) ? relative : file;
}
