#!/usr/bin/env node
/**
 * Regenerates src/export/onnx-schema.json, the protobufjs descriptor of ONNX's
 * `onnx.proto` (protobufjs `parse(..., { keepCase: true }).root.toJSON()`), from
 * the schema file the `onnx` Python package ships:
 *
 *   python3 -m venv /tmp/onnx-venv && /tmp/onnx-venv/bin/pip install onnx
 *   node scripts/onnx/onnx-schema.mjs "$(/tmp/onnx-venv/bin/python -c "import onnx, os; print(os.path.dirname(onnx.__file__))")"/onnx.proto 1.23.2
 *   npx biome format --write src/export/onnx-schema.json
 *
 * The second argument is the onnx version the file came from (recorded in the file
 * as `onnxVersion`). src/export/onnx-schema.ts reads the file at run time.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

const [protoFile, onnxVersion] = process.argv.slice(2);
if (!protoFile || !onnxVersion) {
  console.error('usage: node scripts/onnx/onnx-schema.mjs <path/to/onnx.proto> <onnx version>');
  process.exit(2);
}
const parsed = protobuf.parse(readFileSync(protoFile, 'utf8'), { keepCase: true });
if (parsed.package !== 'onnx') {
  console.error(`${protoFile}: expected package "onnx", found ${parsed.package}`);
  process.exit(1);
}
const descriptor = parsed.root.toJSON();
const out = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'export', 'onnx-schema.json');
const file = {
  onnxVersion,
  generatedBy: 'scripts/onnx/onnx-schema.mjs (do not edit by hand)',
  descriptor,
};
writeFileSync(out, `${JSON.stringify(file, null, 2)}\n`);
console.log(`wrote ${out}`);
