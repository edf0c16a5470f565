/**
 * A classifier finetuned on the demo data, exported with `selfsup export --format
 * onnx --softmax`, predicts in onnxruntime-node exactly what `selfsup eval`
 * predicts on the demo test set (1,000 images); the Node and Python snippets of
 * docs/deploy.md, copied out of the page, print the same classes.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { main } from '../../src/cli/main.js';
import { openImageSource } from '../../src/data/open.js';
import { initEngine } from '../../src/engine/backend.js';
import { decodeOnnxModel } from '../../src/export/onnx-proto.js';
import { runEvaluation } from '../../src/finetune/eval-job.js';
import { loadImageSet } from '../../src/finetune/image-set.js';
import { readClassifierFile } from '../../src/finetune/model-io.js';
import { runFinetune } from '../../src/finetune/run.js';
import { resolveFinetuneRecipe } from '../../src/recipes/finetune-recipe.js';
import { columnValues, readArrowTable } from '../../src/util/arrow.js';
import { writeTinyBackboneExport } from '../cli/fixtures.js';
import { DEMO_DATA, ROOT } from '../support/cli.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'selfsup-onnx-classifier-'));
const model = path.join(tmp, 'model');
const testSet = path.join(DEMO_DATA, 'test');
const onnxDir = path.join(tmp, 'onnx');
// Snippets import onnxruntime-node and sharp: they run from a folder inside the repository so both resolve.
const snippetDir = path.join(ROOT, 'node_modules', '.cache', `selfsup-deploy-${process.pid}`);

/** The code block after `<!-- snippet: name -->` in docs/deploy.md. */
function snippet(name: string): string {
  const page = readFileSync(path.join(ROOT, 'docs', 'deploy.md'), 'utf8');
  const match = new RegExp(`<!-- snippet: ${name.replace('.', '\\.')} -->\\n\`\`\`\\w+\\n([\\s\\S]*?)\`\`\``).exec(
    page,
  );
  if (!match) throw new Error(`docs/deploy.md has no snippet ${name}`);
  return match[1];
}

/** A Python that has onnxruntime, numpy and Pillow ($SELFSUP_ONNX_PYTHON, else python3), or undefined. */
function findPython(): string | undefined {
  const python = process.env.SELFSUP_ONNX_PYTHON ?? 'python3';
  const probe = spawnSync(python, ['-c', 'import onnxruntime, numpy, PIL'], { encoding: 'utf8' });
  return probe.status === 0 ? python : undefined;
}
const python = findPython();

/** What `selfsup eval` wrote for each image path: class name and confidence. */
function evalPredictions(): Map<string, { name: string; confidence: number }> {
  const table = readArrowTable(path.join(tmp, 'eval', 'predictions.arrow'));
  const paths = columnValues(table, 'path') as string[];
  const names = columnValues(table, 'predicted_name') as string[];
  const confidences = columnValues(table, 'confidence') as number[];
  return new Map(paths.map((p, i) => [p, { name: names[i], confidence: confidences[i] }]));
}

/** Runs a snippet on 30 demo test images and checks every printed line against eval. */
function checkSnippetOutput(stdout: string, images: string[]): void {
  const expected = evalPredictions();
  const lines = stdout.trim().split('\n');
  expect(lines.length).toBe(images.length);
  lines.forEach((line, i) => {
    const [file, name, confidence] = line.split('\t');
    expect(file).toBe(images[i]);
    const reference = expected.get(images[i])!;
    expect(name, file).toBe(reference.name);
    expect(Math.abs(Number(confidence) - reference.confidence), file).toBeLessThan(2e-4);
  });
}

describe('ONNX classifier vs selfsup eval on the demo test set', () => {
  beforeAll(async () => {
    expect(initEngine().backend).toBe('tensorflow');
    const backbone = await writeTinyBackboneExport(path.join(tmp, 'backbone'), 28);
    // An MLP head, so the export folds a BatchNorm1d too; the backbone's last stage trains (its BN statistics move).
    const recipe = resolveFinetuneRecipe({
      name: 'onnx-check',
      head: { hidden: [16] },
      stages: [{ epochs: 1, trainable: ['layer4', 'head'] }],
      train: { batchSize: 32, optimizer: { lr: 0.05 } },
      eval: { holdout: 0.1 },
    });
    await runFinetune({ recipe, backbone, labels: path.join(DEMO_DATA, 'labeled'), out: model });
  });
  afterAll(() => {
    rmSync(tmp, { recursive: true, force: true });
    rmSync(snippetDir, { recursive: true, force: true });
  });

  it('same predicted class for every image, probabilities within 1e-4', async () => {
    const evaluation = await runEvaluation({ model, labels: testSet, out: path.join(tmp, 'eval') });
    expect(evaluation.images).toBe(1000);
    const predictions = readArrowTable(path.join(tmp, 'eval', 'predictions.arrow'));

    const out = onnxDir;
    const writes: string[] = [];
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      writes.push(chunk.toString());
      return true;
    });
    const code = await main(['export', model, '--format', 'onnx', '--softmax', '--out', out]);
    vi.restoreAllMocks();
    expect(code).toBe(0);
    expect(writes.join('')).toContain('exported a 10-class classifier on resnet18');
    expect(readdirSync(out).sort()).toEqual(['.selfsup-output.json', 'manifest.json', 'model.onnx']);

    const bytes = readFileSync(path.join(out, 'model.onnx'));
    const { spec } = readClassifierFile(model);
    const metadata = Object.fromEntries((decodeOnnxModel(bytes).metadata_props ?? []).map((p) => [p.key, p.value]));
    expect(JSON.parse(metadata.class_names)).toEqual(spec.classNames);
    expect(metadata.input_size).toBe(String(spec.input.size));

    // The same pixels eval sees: decoded and resized to the classifier's input size, in [0, 1].
    const set = await loadImageSet(await openImageSource(testSet, { needLabels: true, split: 't10k' }), {
      size: spec.input.size,
      channels: spec.input.channels,
    });
    const session = await ort.InferenceSession.create(bytes);
    const k = spec.classNames.length;
    const plane = set.height * set.width; // one channel: NHWC and NCHW hold the same order
    const probabilities = new Float32Array(set.count * k);
    for (let start = 0; start < set.count; start += 250) {
      const end = Math.min(set.count, start + 250);
      const image = new ort.Tensor('float32', set.pixels.slice(start * plane, end * plane), [
        end - start,
        1,
        set.height,
        set.width,
      ]);
      const result = await session.run({ image });
      probabilities.set(result.probabilities.data as Float32Array, start * k);
    }
    await session.release();

    const byPath = new Map<string, number>();
    for (let i = 0; i < set.count; i++) byPath.set(set.describe(i), i);
    const paths = columnValues(predictions, 'path') as string[];
    const predicted = columnValues(predictions, 'predicted') as number[];
    const evalProbabilities = columnValues(predictions, 'probabilities') as ArrayLike<number>[];
    let agree = 0;
    let maxDifference = 0;
    paths.forEach((p, row) => {
      const i = byPath.get(p)!;
      const mine = probabilities.subarray(i * k, (i + 1) * k);
      const argmax = mine.indexOf(Math.max(...mine));
      if (argmax === predicted[row]) agree++;
      for (let c = 0; c < k; c++)
        maxDifference = Math.max(maxDifference, Math.abs(mine[c] - evalProbabilities[row][c]));
    });
    expect(paths.length).toBe(1000);
    expect(agree).toBe(1000);
    expect(maxDifference).toBeLessThan(1e-4);
  });

  const images = () => [...evalPredictions().keys()].filter((_, i) => i % 33 === 0).slice(0, 30);

  it('the Node snippet of docs/deploy.md prints the classes eval predicted', () => {
    mkdirSync(snippetDir, { recursive: true });
    const script = path.join(snippetDir, 'classify.mjs');
    writeFileSync(script, snippet('classify.mjs'));
    const list = images();
    const run = spawnSync(process.execPath, [script, onnxDir, ...list], { encoding: 'utf8' });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    checkSnippetOutput(run.stdout, list);
  });

  it.skipIf(!python)(
    `the Python snippet of docs/deploy.md prints the classes eval predicted${python ? '' : ' (skipped: no Python with onnxruntime, numpy and Pillow; set SELFSUP_ONNX_PYTHON)'}`,
    () => {
      const script = path.join(tmp, 'classify.py');
      writeFileSync(script, snippet('classify.py'));
      const list = images();
      const run = spawnSync(python!, [script, onnxDir, ...list], { encoding: 'utf8' });
      expect(run.stderr).toBe('');
      expect(run.status).toBe(0);
      checkSnippetOutput(run.stdout, list);
    },
  );
});
