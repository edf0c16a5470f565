/**
 * ONNX protobuf messages through protobufjs and ONNX's own schema (onnx.proto,
 * as a descriptor in onnx-schema.json): a small graph builder that collects nodes
 * and initializers, and encode/decode of a ModelProto. Nothing here knows about
 * ResNets; src/export/onnx.ts builds the graph.
 */
import protobuf from 'protobufjs';
import { InputError } from '../util/errors.js';
import { onnxSchema } from './onnx-schema.js';
import { float32ToFloat16Bits } from './safetensors.js';

/** TensorProto.DataType values used here. */
export const ONNX_FLOAT = 1;
export const ONNX_INT64 = 7;
export const ONNX_FLOAT16 = 10;

/** AttributeProto.AttributeType values used here. */
const ATTRIBUTE_FLOAT = 1;
const ATTRIBUTE_INT = 2;
const ATTRIBUTE_STRING = 3;
const ATTRIBUTE_INTS = 7;

let modelProtoType: protobuf.Type | undefined;

/** onnx.ModelProto, built from the schema on first use. */
function modelProto(): protobuf.Type {
  modelProtoType ??= protobuf.Root.fromJSON(onnxSchema().descriptor).lookupType('onnx.ModelProto');
  return modelProtoType;
}

/** A symbolic (`batch`) or fixed (`3`) dimension of a graph input or output. */
export type OnnxDim = string | number;

export interface OnnxValueInfo {
  name: string;
  /** TensorProto.DataType (ONNX_FLOAT, ...). */
  elemType: number;
  dims: OnnxDim[];
  docString?: string;
}

/** Attribute values by name: numbers are INT unless listed in `floats`, arrays are INTS, strings are STRING. */
export type OnnxAttributes = Record<string, number | number[] | string>;

interface NodeMessage {
  name: string;
  op_type: string;
  input: string[];
  output: string[];
  attribute: object[];
}

interface TensorMessage {
  name: string;
  dims: number[];
  data_type: number;
  raw_data: Uint8Array;
}

/** float32 values as little-endian bytes (TensorProto.raw_data is always little-endian). */
function float32Bytes(values: Float32Array): Uint8Array {
  const bytes = new Uint8Array(values.length * 4);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i], true);
  return bytes;
}

function float16Bytes(values: Float32Array): Uint8Array {
  const bytes = new Uint8Array(values.length * 2);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < values.length; i++) view.setUint16(i * 2, float32ToFloat16Bits(values[i]), true);
  return bytes;
}

function attribute(name: string, value: number | number[] | string, isFloat: boolean): object {
  if (typeof value === 'string') return { name, type: ATTRIBUTE_STRING, s: new TextEncoder().encode(value) };
  if (Array.isArray(value)) return { name, type: ATTRIBUTE_INTS, ints: value };
  if (isFloat) return { name, type: ATTRIBUTE_FLOAT, f: value };
  return { name, type: ATTRIBUTE_INT, i: value };
}

function valueInfo(info: OnnxValueInfo): object {
  return {
    name: info.name,
    ...(info.docString ? { doc_string: info.docString } : {}),
    type: {
      tensor_type: {
        elem_type: info.elemType,
        shape: { dim: info.dims.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d })) },
      },
    },
  };
}

/**
 * Collects the nodes and initializers of one graph, in order. Weights are
 * float32, or float16 initializers each followed by a Cast to float32 (half the
 * file; arithmetic stays float32, so every runtime's float32 kernels apply).
 */
export class OnnxGraphBuilder {
  private readonly nodes: NodeMessage[] = [];
  private readonly initializers: TensorMessage[] = [];
  private readonly names = new Set<string>();

  constructor(readonly weightType: 'float32' | 'float16' = 'float32') {}

  private claim(name: string): string {
    if (this.names.has(name)) throw new Error(`duplicate ONNX value name "${name}"`);
    this.names.add(name);
    return name;
  }

  /** A float32 constant initializer (never converted to float16), e.g. the input normalisation. */
  constant(name: string, values: Float32Array, dims: number[]): string {
    this.initializers.push({ name: this.claim(name), dims, data_type: ONNX_FLOAT, raw_data: float32Bytes(values) });
    return name;
  }

  /** A weight initializer in the builder's weight type; returns the name of a float32 value. */
  weight(name: string, values: Float32Array, dims: number[]): string {
    const count = dims.reduce((a, b) => a * b, 1);
    if (count !== values.length) throw new Error(`weight ${name}: ${values.length} values for shape [${dims}]`);
    if (this.weightType === 'float32') return this.constant(name, values, dims);
    const stored = this.claim(`${name}.float16`);
    this.initializers.push({ name: stored, dims, data_type: ONNX_FLOAT16, raw_data: float16Bytes(values) });
    return this.node('Cast', `${name}.cast`, [stored], { to: ONNX_FLOAT }, name);
  }

  /**
   * Adds a node with one output and returns the output's name (`output`, or the
   * node name). `floats` lists the attributes that are FLOAT rather than INT.
   */
  node(
    opType: string,
    name: string,
    inputs: string[],
    attributes: OnnxAttributes = {},
    output = name,
    floats: string[] = [],
  ): string {
    this.nodes.push({
      name,
      op_type: opType,
      input: inputs,
      output: [this.claim(output)],
      attribute: Object.entries(attributes).map(([key, value]) => attribute(key, value, floats.includes(key))),
    });
    return output;
  }

  /** The GraphProto as a plain object for {@link encodeOnnxModel}. */
  graph(name: string, inputs: OnnxValueInfo[], outputs: OnnxValueInfo[], docString = ''): object {
    return {
      name,
      doc_string: docString,
      node: this.nodes,
      initializer: this.initializers,
      input: inputs.map(valueInfo),
      output: outputs.map(valueInfo),
    };
  }
}

export interface OnnxModelFields {
  graph: object;
  irVersion: number;
  opset: number;
  producerName: string;
  producerVersion: string;
  docString?: string;
  /** ModelProto.metadata_props: string key/value pairs any runtime can read. */
  metadata: Record<string, string>;
}

/** Serialises a ModelProto. */
export function encodeOnnxModel(fields: OnnxModelFields): Uint8Array {
  const ModelProto = modelProto();
  const message = ModelProto.fromObject({
    ir_version: fields.irVersion,
    opset_import: [{ domain: '', version: fields.opset }],
    producer_name: fields.producerName,
    producer_version: fields.producerVersion,
    doc_string: fields.docString ?? '',
    graph: fields.graph,
    metadata_props: Object.entries(fields.metadata).map(([key, value]) => ({ key, value })),
  });
  const problem = ModelProto.verify(message);
  if (problem) throw new Error(`invalid ONNX model: ${problem}`);
  return ModelProto.encode(message).finish();
}

/** What {@link decodeOnnxModel} returns: the ModelProto as plain data (int64 as numbers, bytes as Uint8Array). */
export interface DecodedOnnxModel {
  ir_version: number;
  opset_import: Array<{ domain?: string; version: number }>;
  producer_name?: string;
  producer_version?: string;
  metadata_props?: Array<{ key: string; value: string }>;
  graph: {
    name: string;
    node: Array<{ name?: string; op_type: string; input?: string[]; output: string[] }>;
    initializer?: Array<{ name: string; dims?: number[]; data_type: number; raw_data?: Uint8Array }>;
    input: Array<{ name: string; type: { tensor_type: { elem_type: number; shape: { dim: object[] } } } }>;
    output: Array<{ name: string; type: { tensor_type: { elem_type: number; shape: { dim: object[] } } } }>;
  };
}

/** Parses ONNX bytes (for checks and tests); `file` names the source in errors. */
export function decodeOnnxModel(bytes: Uint8Array, file = '<buffer>'): DecodedOnnxModel {
  const ModelProto = modelProto();
  try {
    const message = ModelProto.decode(bytes);
    return ModelProto.toObject(message, { longs: Number, defaults: false }) as DecodedOnnxModel;
  } catch (e) {
    throw new InputError(file, `not an ONNX model (${(e as Error).message})`);
  }
}
