/**
 * ONNX's onnx.proto as a protobufjs descriptor, field names as in the .proto file.
 * The descriptor is generated data, kept in onnx-schema.json beside this module
 * (tsconfig.json copies it to dist/, so it ships with the package):
 * scripts/onnx/onnx-schema.mjs writes it from the onnx.proto that the `onnx`
 * Python package ships (the script's header has the commands); do not edit it by hand.
 */
import { readFileSync } from 'node:fs';
import type protobuf from 'protobufjs';

/** What onnx-schema.json holds: the onnx release the schema came from and the descriptor (protobufjs `Root.toJSON`). */
export interface OnnxSchemaFile {
  onnxVersion: string;
  generatedBy: string;
  descriptor: protobuf.INamespace;
}

let schema: OnnxSchemaFile | undefined;

/** The ONNX schema, read from onnx-schema.json on first use. */
export function onnxSchema(): OnnxSchemaFile {
  schema ??= JSON.parse(readFileSync(new URL('./onnx-schema.json', import.meta.url), 'utf8')) as OnnxSchemaFile;
  return schema;
}
