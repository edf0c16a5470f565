// @ts-check
/**
 * The whole journey through the library API, on a few steps of everything:
 * scan a folder of unlabeled images, pretrain a narrow ResNet-18 with the rotation
 * task, export the backbone (safetensors for PyTorch, ONNX), finetune a classifier
 * on labeled class folders, evaluate it, and export the classifier to ONNX.
 *
 *   npm install selfsup
 *   node quickstart.mjs <data> <out>
 *
 * <data> holds `unlabeled/` (any images, nested folders fine), `labeled/<class>/`
 * and `test/<class>/`, like selfsup's demo data (data/fashion-mnist-demo in the
 * repository). Prints a JSON summary of what it wrote.
 */
import path from 'node:path';
import {
  exportBackbone,
  exportClassifierOnnx,
  initEngine,
  pretrain,
  resolveFinetuneRecipe,
  resolvePretrainRecipe,
  runEvaluation,
  runFinetune,
  scanFolder,
} from 'selfsup';

const [data, out] = process.argv.slice(2);
if (!data || !out) {
  console.error('usage: node quickstart.mjs <data folder with unlabeled/, labeled/, test/> <output folder>');
  process.exit(2);
}

// Native TensorFlow (tfjs-node); initEngine reports which backend it chose.
const engine = initEngine({ quiet: true });

// 1. Scan: one row per file, unreadable files recorded with their reason.
const manifest = path.join(out, 'unlabeled.arrow');
const scan = await scanFolder(path.join(data, 'unlabeled'), { out: manifest });

// 2. Pretrain: recipes are plain data, checked against the schema (an unknown key is an error naming it).
const pretrainRecipe = resolvePretrainRecipe({
  name: 'quickstart',
  seed: 1,
  task: { id: 'rotation' },
  backbone: { arch: 'resnet18', stem: 'small', widthMultiplier: 0.125 },
  input: { size: 28, channels: 1, mean: [0.5], std: [0.5] },
  data: { batchSize: 32 },
  train: { epochs: 1, maxStepsPerEpoch: 4 },
});
const run = await pretrain(pretrainRecipe, { dataPath: manifest, outDir: out, runId: 'pretrain', progress: false });

// 3. Export the backbone: torchvision-named safetensors and ONNX (image -> features).
const safetensors = await exportBackbone(run.runDir, 'safetensors', path.join(out, 'backbone'));
const backboneOnnx = await exportBackbone(run.runDir, 'onnx', path.join(out, 'backbone.onnx'));

// 4. Finetune a linear classifier on the labeled class folders, then evaluate it on the test folders.
const finetuneRecipe = resolveFinetuneRecipe({
  name: 'quickstart-probe',
  seed: 1,
  stages: [{ epochs: 1, trainable: ['head'] }],
  train: { batchSize: 64, optimizer: { lr: 0.05 } },
});
const model = path.join(out, 'model');
const finetuned = await runFinetune({
  recipe: finetuneRecipe,
  backbone: run.runDir,
  labels: path.join(data, 'labeled'),
  test: path.join(data, 'test'),
  out: model,
  progress: false,
});
const evaluation = await runEvaluation({ model, labels: path.join(data, 'test') });

// 5. Export the classifier for deployment: image -> logits, probabilities.
const classifierOnnx = await exportClassifierOnnx(model, path.join(out, 'classifier-onnx'), { softmax: true });

console.log(
  JSON.stringify(
    {
      backend: engine.backend,
      scanned: { ok: scan.ok, bad: scan.bad },
      pretrain: { status: run.status, steps: run.losses.length, runDir: run.runDir },
      exports: {
        safetensors: path.join(out, 'backbone'),
        backboneOnnx: path.join(out, backboneOnnx.files.model),
        classifierOnnx: path.join(out, 'classifier-onnx', classifierOnnx.files.model),
      },
      featureDim: safetensors.featureDim,
      finetune: { accuracy: finetuned.accuracy, trainImages: finetuned.trainImages },
      evaluation: { images: evaluation.images, accuracy: evaluation.accuracy },
    },
    null,
    2,
  ),
);
