/**
 * TensorFlow graphs and sessions through selfsup's own addon
 * (native/graph-session, compiled at install time against the TensorFlow C
 * library that @tensorflow/tfjs-node loads): build a graph op by op, add its
 * symbolic gradients (TensorFlow's C++ gradient registry), and run it in a
 * session whose graph optimiser (grappler) fuses ops and, where asked, rewrites
 * convolutions and matrix products to bfloat16 (oneDNN's auto mixed precision).
 *
 * Nothing is loaded at import time: {@link graphRuntime} loads the addon on first
 * use (after tfjs-node, so both share one libtensorflow) and says why when it cannot.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';
import { engineInfo, initEngine } from './backend.js';

const require = createRequire(import.meta.url);

/** TF_DataType values used here. */
export const DT_FLOAT = 1;
export const DT_INT32 = 3;
export const DT_BOOL = 10;
export const DT_BFLOAT16 = 14;

/** A tensor crossing the addon boundary: dtype (TF_DataType), shape and row-major data. */
export interface HostTensor {
  dtype: number;
  shape: number[];
  data: Float32Array | Int32Array | Uint16Array;
}

interface AddonAttribute {
  name: string;
  kind: 'type' | 'types' | 'int' | 'ints' | 'float' | 'bool' | 'string' | 'shape' | 'tensor';
  value: unknown;
}

/** The addon's functions (native/graph-session/graph_session.cc). */
interface GraphAddon {
  version(): string;
  newGraph(): object;
  deleteGraph(graph: object): void;
  addOperation(
    graph: object,
    type: string,
    name: string,
    inputs: Array<string | string[]>,
    attrs: AddonAttribute[],
    control?: string[],
  ): number;
  outputShape(graph: object, output: string): number[] | null;
  addGradients(graph: object, prefix: string, ys: string[], xs: string[]): Array<string | null>;
  newSession(graph: object, config: Uint8Array): object;
  closeSession(session: object): void;
  run(session: object, feeds: Array<HostTensor & { name: string }>, fetches: string[], targets: string[]): HostTensor[];
}

/** Whether the graph path can run here, and why not. */
export type GraphRuntimeStatus = { available: true; version: string } | { available: false; reason: string };

const ADDON_RELATIVE = path.join('native', 'graph-session', 'build', 'Release', 'selfsup_graph.node');

/** The package root (the folder with package.json), from src/engine or dist/src/engine. */
function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(path.join(dir, 'package.json')) && existsSync(path.join(dir, 'native'))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) return process.cwd();
    dir = parent;
  }
}

let loaded: { addon?: GraphAddon; status: GraphRuntimeStatus } | undefined;

/** Why the addon was not built, from the note native/graph-session/build.cjs leaves. */
function buildNote(root: string): string | undefined {
  try {
    return readFileSync(path.join(root, 'native', 'graph-session', 'build', 'NOT-BUILT.txt'), 'utf8').trim();
  } catch {
    return undefined;
  }
}

function load(): { addon?: GraphAddon; status: GraphRuntimeStatus } {
  if (loaded) return loaded;
  const root = packageRoot();
  const file = path.join(root, ADDON_RELATIVE);
  if (!existsSync(file)) {
    const note = buildNote(root);
    loaded = {
      status: {
        available: false,
        reason: `the graph addon is not built (${note ?? `no ${ADDON_RELATIVE}`}); run \`npm run build:native\``,
      },
    };
    return loaded;
  }
  // The addon links the TensorFlow library of @tensorflow/tfjs-node; a process runs one native package.
  const engine = engineInfo() ?? initEngine({ quiet: true });
  if (engine.provider !== '@tensorflow/tfjs-node') {
    loaded = {
      status: {
        available: false,
        reason: `the graph addon runs with @tensorflow/tfjs-node; this process uses ${engine.provider} (backend ${engine.backend})`,
      },
    };
    return loaded;
  }
  try {
    // tfjs-node first: the addon then binds to the libtensorflow it already loaded.
    require('@tensorflow/tfjs-node');
    const addon = require(file) as GraphAddon;
    loaded = { addon, status: { available: true, version: addon.version() } };
  } catch (error) {
    const message = (error as Error).message.split('\n')[0];
    loaded = { status: { available: false, reason: `the graph addon does not load: ${message}` } };
  }
  return loaded;
}

/** Loads the addon (once) and reports whether graphs can run. */
export function graphRuntimeStatus(): GraphRuntimeStatus {
  return load().status;
}

function addon(): GraphAddon {
  const { addon, status } = load();
  if (!addon) throw new Error(`compiled graphs are unavailable: ${(status as { reason: string }).reason}`);
  return addon;
}

/** The CPU's feature flags (Linux: /proc/cpuinfo; empty where it cannot be read). */
function cpuFlags(): Set<string> {
  try {
    return new Set((readFileSync('/proc/cpuinfo', 'utf8').match(/^flags\s*:(.*)$/m)?.[1] ?? '').trim().split(/\s+/));
  } catch {
    return new Set();
  }
}

/** CPU features that make oneDNN's bfloat16 kernels fast (Linux: /proc/cpuinfo flags). */
export function cpuBfloat16Features(flags: Set<string> = cpuFlags()): string[] {
  return ['avx512_bf16', 'amx_bf16'].filter((f) => flags.has(f));
}

/**
 * Whether TensorFlow's oneDNN kernels run bfloat16 on this CPU at all: they need
 * AVX-512 (emulated, slower, without AVX512-BF16 or AMX); elsewhere a bfloat16 graph
 * fails at its first BatchNorm ("Op does not support bfloat16 inputs").
 */
export function cpuRunsBfloat16(flags: Set<string> = cpuFlags()): boolean {
  return flags.has('avx512f') || cpuBfloat16Features(flags).length > 0;
}

/** An attribute value: the field says its TensorFlow kind. */
export type AttrValue =
  | { type: number }
  | { types: number[] }
  | { int: number }
  | { ints: number[] }
  | { float: number }
  | { bool: boolean }
  | { string: string }
  | { shape: number[] }
  | { tensor: HostTensor };

function toAddonAttributes(attrs: Record<string, AttrValue>): AddonAttribute[] {
  return Object.entries(attrs).map(([name, value]) => {
    const [kind, v] = Object.entries(value)[0] as [AddonAttribute['kind'], unknown];
    return { name, kind, value: v };
  });
}

/**
 * A TensorFlow graph under construction. Outputs are named `op:index`; `op()`
 * returns the first output's name, `output(name, i)` any other.
 */
export class GraphBuilder {
  private readonly native = addon();
  readonly handle: object = this.native.newGraph();
  private readonly used = new Map<string, number>();
  private deleted = false;

  /** A unique operation name from `base` (`scope/Conv2D`, `scope/Conv2D_1`, ...). */
  uniqueName(base: string): string {
    const count = this.used.get(base) ?? 0;
    this.used.set(base, count + 1);
    return count === 0 ? base : `${base}_${count}`;
  }

  /** Adds an operation; returns its first output (`name:0`). */
  op(
    type: string,
    inputs: Array<string | string[]>,
    attrs: Record<string, AttrValue> = {},
    options: { name?: string; control?: string[] } = {},
  ): string {
    const name = this.uniqueName(options.name ?? type);
    this.native.addOperation(this.handle, type, name, inputs, toAddonAttributes(attrs), options.control ?? []);
    return `${name}:0`;
  }

  /** The `index`-th output of the operation that produced `first`. */
  output(first: string, index: number): string {
    return `${opName(first)}:${index}`;
  }

  shape(output: string): number[] | null {
    return this.native.outputShape(this.handle, output);
  }

  placeholder(name: string, dtype: number, shape: number[]): string {
    return this.op('Placeholder', [], { dtype: { type: dtype }, shape: { shape } }, { name });
  }

  constFloat(values: number[] | Float32Array, shape: number[], name = 'Const'): string {
    const data = values instanceof Float32Array ? values : Float32Array.from(values);
    return this.op(
      'Const',
      [],
      { dtype: { type: DT_FLOAT }, value: { tensor: { dtype: DT_FLOAT, shape, data } } },
      { name },
    );
  }

  constInt(values: number[], shape: number[], name = 'Const'): string {
    return this.op(
      'Const',
      [],
      { dtype: { type: DT_INT32 }, value: { tensor: { dtype: DT_INT32, shape, data: Int32Array.from(values) } } },
      { name },
    );
  }

  /**
   * A resource variable (float32 unless `dtype` says otherwise, e.g. DT_INT32 for a
   * queue pointer): its handle, a read of its value, and an init operation that
   * assigns a fed value (placeholder `<name>/init_value`).
   */
  variable(name: string, shape: number[], dtype = DT_FLOAT): GraphVariableOps {
    const type = { type: dtype };
    const handle = this.op(
      'VarHandleOp',
      [],
      { dtype: type, shape: { shape }, shared_name: { string: name } },
      { name },
    );
    const read = this.op('ReadVariableOp', [handle], { dtype: type }, { name: `${name}/read` });
    const snapshot = this.op('ReadVariableOp', [handle], { dtype: type }, { name: `${name}/snapshot` });
    const initValue = this.placeholder(`${name}/init_value`, dtype, shape);
    const init = opName(this.op('AssignVariableOp', [handle, initValue], { dtype: type }, { name: `${name}/init` }));
    return { handle, read, snapshot, initValue, init, shape, dtype };
  }

  /** Symbolic gradients of sum(ys) with respect to xs (null where x does not reach ys). */
  gradients(ys: string[], xs: string[], prefix = 'gradients'): Array<string | null> {
    return this.native.addGradients(this.handle, this.uniqueName(prefix), ys, xs);
  }

  /** Frees the graph (after every session over it is closed). */
  dispose(): void {
    if (this.deleted) return;
    this.deleted = true;
    this.native.deleteGraph(this.handle);
  }
}

/** The operations of one graph variable. */
export interface GraphVariableOps {
  /** The resource handle (input of AssignVariableOp and the Resource* optimizer ops). */
  handle: string;
  /** The value read for the computation. */
  read: string;
  /** A separate read, fetched to copy the value out. */
  snapshot: string;
  /** Placeholder fed with a value for `init`. */
  initValue: string;
  /** AssignVariableOp operation name (a run target). */
  init: string;
  shape: number[];
  /** TF_DataType of the variable (DT_FLOAT or DT_INT32). */
  dtype: number;
}

/** The operation name of an output (`scope/Conv2D:1` -> `scope/Conv2D`). */
export function opName(output: string): string {
  const colon = output.lastIndexOf(':');
  return colon < 0 ? output : output.slice(0, colon);
}

/** How a session runs its graph. */
export interface SessionOptions {
  /** Threads inside one op (TF_NUM_INTRAOP_THREADS's meaning); 0 = TensorFlow's choice. */
  intraOpThreads: number;
  /** Ops run side by side; 0 = TensorFlow's choice. */
  interOpThreads: number;
  /** Rewrite convolutions, matrix products and their gradients to bfloat16 (oneDNN auto mixed precision). */
  bfloat16: boolean;
}

// ConfigProto, GraphOptions and RewriterConfig: only the fields set here, with
// TensorFlow 2.12's field numbers (tensorflow/core/protobuf/{config,rewriter_config}.proto).
const configRoot = protobuf.Root.fromJSON({
  nested: {
    tensorflow: {
      nested: {
        ConfigProto: {
          fields: {
            intraOpParallelismThreads: { type: 'int32', id: 2 },
            interOpParallelismThreads: { type: 'int32', id: 5 },
            graphOptions: { type: 'GraphOptions', id: 10 },
          },
        },
        GraphOptions: { fields: { rewriteOptions: { type: 'RewriterConfig', id: 10 } } },
        RewriterConfig: {
          fields: {
            remapping: { type: 'int32', id: 14 },
            autoMixedPrecisionOnednnBfloat16: { type: 'int32', id: 31 },
          },
        },
      },
    },
  },
});
const ConfigProto = configRoot.lookupType('tensorflow.ConfigProto');
const TOGGLE_ON = 1;
const TOGGLE_OFF = 2;

/** The serialized ConfigProto for `options`: remapper (conv + BatchNorm + ReLU fusion) on, bfloat16 as asked. */
export function sessionConfig(options: SessionOptions): Uint8Array {
  return ConfigProto.encode(
    ConfigProto.create({
      intraOpParallelismThreads: options.intraOpThreads,
      interOpParallelismThreads: options.interOpThreads,
      graphOptions: {
        rewriteOptions: {
          remapping: TOGGLE_ON,
          autoMixedPrecisionOnednnBfloat16: options.bfloat16 ? TOGGLE_ON : TOGGLE_OFF,
        },
      },
    }),
  ).finish();
}

/** A session over a finished graph; `close()` frees it (the graph is the caller's). */
export class GraphSession {
  private readonly native = addon();
  private readonly handle: object;
  private closed = false;

  constructor(graph: GraphBuilder, options: SessionOptions) {
    this.handle = this.native.newSession(graph.handle, sessionConfig(options));
  }

  /** Runs `targets` and returns `fetches` with `feeds` fed (by output name). */
  run(feeds: Record<string, HostTensor>, fetches: string[], targets: string[] = []): HostTensor[] {
    if (this.closed) throw new Error('this graph session was closed');
    const list = Object.entries(feeds).map(([name, t]) => ({ name, ...t }));
    return this.native.run(this.handle, list, fetches, targets);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.native.closeSession(this.handle);
  }
}
