/**
 * Reads files written by `torch.save` (`.pth`, `.pt`, `.ckpt`, `.bin`) without
 * Python and without executing anything:
 *
 * - the zip format (PyTorch >= 1.6): `<archive>/data.pkl` holds the object,
 *   `<archive>/data/<key>` one raw little-endian storage each;
 * - the legacy format (`_use_new_zipfile_serialization=False`): five pickles in a
 *   row (magic number, protocol version, system info, the object, the sorted
 *   storage keys), then each storage as an int64 element count and its bytes.
 *
 * The object pickle goes through the restricted unpickler (unpickle.ts) with the
 * handful of torch globals needed to rebuild tensors. Tensors stay lazy: only
 * their storage key, dtype, shape, strides and offset are read; `readTensor`
 * fetches exactly the bytes a tensor covers when asked. Every size is checked
 * against the file size (and the storage's size) before anything is allocated.
 */
import { InputError } from '../../util/errors.js';
import type { SafetensorsDtype, SafetensorsEntry } from '../safetensors.js';
import { FileSource } from './file-source.js';
import { type AllowedGlobal, unpickle } from './unpickle.js';
import { looksLikeZip, readZipDirectory, readZipEntry, type ZipEntry, zipDataOffset } from './zip.js';

export type TorchDtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

export const TORCH_ITEM_SIZE: Record<TorchDtype, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

/** torch.<Name>Storage -> dtype (the legacy typed-storage names torch still pickles). */
const STORAGE_DTYPES: Record<string, TorchDtype> = {
  DoubleStorage: 'F64',
  FloatStorage: 'F32',
  HalfStorage: 'F16',
  BFloat16Storage: 'BF16',
  LongStorage: 'I64',
  IntStorage: 'I32',
  ShortStorage: 'I16',
  CharStorage: 'I8',
  ByteStorage: 'U8',
  BoolStorage: 'BOOL',
  UntypedStorage: 'U8',
};

/** One storage: `numel` elements of `dtype`, located lazily. */
export class TorchStorage {
  constructor(
    readonly key: string,
    readonly dtype: TorchDtype,
    readonly numel: number,
    /** Element offset into a base storage (old storage views), 0 otherwise. */
    readonly baseOffset = 0,
    readonly base?: TorchStorage,
  ) {}
  get root(): TorchStorage {
    return this.base ?? this;
  }
}

/** A tensor as pickled: a view (offset, shape, strides in elements) of a storage. Nothing is read yet. */
export class TorchTensor {
  constructor(
    readonly storage: TorchStorage,
    readonly storageOffset: number,
    readonly shape: number[],
    readonly strides: number[],
    readonly requiresGrad: boolean,
  ) {}
  get dtype(): TorchDtype {
    return this.storage.dtype;
  }
  get numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }
  /** Row-major strides: the tensor's bytes are one run of the storage. */
  get contiguous(): boolean {
    let expected = 1;
    for (let i = this.shape.length - 1; i >= 0; i--) {
      if (this.shape[i] !== 1 && this.strides[i] !== expected) return false;
      expected *= this.shape[i];
    }
    return true;
  }
}

/** Token values of allowed globals that are not functions. */
export class TorchToken {
  constructor(readonly qualifiedName: string) {}
}

function isIntList(value: unknown): value is number[] {
  return Array.isArray(value) && value.every((v) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0);
}

function rebuildTensor(file: string, args: unknown[]): TorchTensor {
  const [storage, offset, size, stride, requiresGrad] = args;
  if (!(storage instanceof TorchStorage)) throw new Error('the first argument is not a storage');
  if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) throw new Error('bad storage offset');
  if (!isIntList(size) || !isIntList(stride) || size.length !== stride.length) {
    throw new Error(`bad size/stride ${JSON.stringify(size)} / ${JSON.stringify(stride)}`);
  }
  let numel = 1;
  let last = offset;
  for (let i = 0; i < size.length; i++) {
    numel *= size[i];
    last += (size[i] - 1) * stride[i];
  }
  if (!Number.isSafeInteger(numel) || !Number.isSafeInteger(last)) throw new Error('tensor size overflows');
  if (numel > 0 && last >= storage.numel) {
    throw new InputError(
      file,
      `a tensor of shape [${size.join(', ')}] (strides [${stride.join(', ')}], offset ${offset}) reaches element ${last} ` +
        `of storage "${storage.key}", which has ${storage.numel}`,
    );
  }
  const root = storage.root;
  return new TorchTensor(root, offset + storage.baseOffset, size, stride, requiresGrad === true);
}

/** The torch globals a state dict or a training checkpoint needs, and nothing else. */
function torchGlobals(file: string): (module: string, name: string) => AllowedGlobal | undefined {
  const table = new Map<string, AllowedGlobal>();
  const add = (qualifiedName: string, call?: (args: unknown[]) => unknown, build?: AllowedGlobal['build']) =>
    table.set(qualifiedName, { qualifiedName, call, build });
  const tensorArgument = (value: unknown) => {
    if (!(value instanceof TorchTensor)) throw new Error('expected a tensor');
    return value;
  };
  add('torch._utils._rebuild_tensor', (args) => rebuildTensor(file, args));
  add('torch._utils._rebuild_tensor_v2', (args) => rebuildTensor(file, args));
  add('torch._utils._rebuild_parameter', (args) => tensorArgument(args[0]));
  add('torch._utils._rebuild_parameter_with_state', (args) => tensorArgument(args[0]));
  add('torch._tensor._rebuild_from_type_v2', (args) => {
    const [func, type, inner] = args;
    const typeName = (type as { qualifiedName?: string } | null)?.qualifiedName;
    if (typeName !== 'torch.Tensor' && typeName !== 'torch.nn.parameter.Parameter') {
      throw new Error(`tensor subclass ${typeName ?? '?'} is not rebuilt`);
    }
    const f = func as AllowedGlobal | null;
    if (!f?.call || !Array.isArray(inner)) throw new Error('bad arguments');
    return tensorArgument(f.call(inner));
  });
  for (const name of ['torch.Tensor', 'torch.nn.parameter.Parameter']) add(name, undefined, (target) => target);
  add('torch.Size', (args) => (Array.isArray(args[0]) ? [...args[0]] : []));
  add('torch.device', (args) => args.map(String).join(':'));
  for (const storage of Object.keys(STORAGE_DTYPES)) {
    table.set(`torch.${storage}`, { qualifiedName: `torch.${storage}` });
  }
  table.set('torch.storage.UntypedStorage', { qualifiedName: 'torch.storage.UntypedStorage' });
  for (const dtype of [
    'float64',
    'float32',
    'float16',
    'bfloat16',
    'int64',
    'int32',
    'int16',
    'int8',
    'uint8',
    'bool',
    'double',
    'float',
    'half',
    'long',
    'int',
  ]) {
    table.set(`torch.${dtype}`, { qualifiedName: `torch.${dtype}` });
  }
  return (module, name) => table.get(`${module}.${name}`);
}

function storageDtype(type: unknown, file: string): TorchDtype {
  const name = (type as { qualifiedName?: string } | null)?.qualifiedName ?? '';
  const dtype = STORAGE_DTYPES[name.split('.').pop() ?? ''];
  if (!dtype || !name.startsWith('torch.')) throw new InputError(file, `unknown storage type ${name || String(type)}`);
  return dtype;
}

/** Where each storage's bytes are in the file. */
interface StorageLocation {
  /** Absolute offset of the first byte (stored zip entries and legacy files). */
  offset?: number;
  /** A deflated zip entry, inflated on demand. */
  entry?: ZipEntry;
  byteLength: number;
}

export interface TorchCheckpoint {
  file: string;
  format: 'zip' | 'legacy';
  /** The unpickled object: Maps, arrays, numbers, strings, TorchTensor. */
  root: unknown;
  storages: Map<string, TorchStorage>;
  /** The file size in bytes. */
  fileSize: number;
  /** The tensor's values, contiguous (row-major), as a safetensors entry (F64 becomes F32). */
  readTensor(tensor: TorchTensor, name?: string): SafetensorsEntry;
  close(): void;
}

/** True when `file` looks like a torch.save file (zip or legacy pickle) rather than safetensors. */
export function isTorchCheckpointPath(file: string): boolean {
  return /\.(pth|pt|ckpt|bin|tar|torch|pth\.tar)$/i.test(file);
}

/** Opens a torch.save file. Only the object pickle is read; the caller closes it (or uses withTorchCheckpoint). */
export function openTorchCheckpoint(file: string): TorchCheckpoint {
  const source = new FileSource(file);
  try {
    return looksLikeZip(source) ? openZip(source) : openLegacy(source);
  } catch (e) {
    source.close();
    throw e;
  }
}

/** Opens, runs `fn`, closes. */
export function withTorchCheckpoint<T>(file: string, fn: (checkpoint: TorchCheckpoint) => T): T {
  const checkpoint = openTorchCheckpoint(file);
  try {
    return fn(checkpoint);
  } finally {
    checkpoint.close();
  }
}

function makePersistentLoad(file: string, storages: Map<string, TorchStorage>, size: (bytes: number) => void) {
  return (pid: unknown): TorchStorage => {
    if (!Array.isArray(pid) || pid[0] !== 'storage' || pid.length < 5) {
      throw new InputError(file, `unsupported persistent id ${JSON.stringify(pid)?.slice(0, 80)}`);
    }
    const [, type, key, , numel, view] = pid as [string, unknown, unknown, unknown, unknown, unknown];
    if (typeof key !== 'string' || typeof numel !== 'number' || !Number.isSafeInteger(numel) || numel < 0) {
      throw new InputError(file, `bad storage record ${JSON.stringify(pid)?.slice(0, 80)}`);
    }
    const dtype = storageDtype(type, file);
    let storage = storages.get(key);
    if (!storage) {
      size(numel * TORCH_ITEM_SIZE[dtype]);
      storage = new TorchStorage(key, dtype, numel);
      storages.set(key, storage);
    } else if (storage.dtype !== dtype) {
      throw new InputError(file, `storage "${key}" is used as both ${storage.dtype} and ${dtype}`);
    }
    if (Array.isArray(view) && view.length === 3) {
      // Old storage views: (view_key, element offset, view size).
      const [viewKey, offset, viewSize] = view as [unknown, unknown, unknown];
      if (
        typeof viewKey !== 'string' ||
        typeof offset !== 'number' ||
        typeof viewSize !== 'number' ||
        offset < 0 ||
        offset + viewSize > storage.numel
      ) {
        throw new InputError(file, `bad storage view of "${key}"`);
      }
      return new TorchStorage(viewKey, dtype, viewSize, offset, storage);
    }
    return storage;
  };
}

function openZip(source: FileSource): TorchCheckpoint {
  const file = source.file;
  const entries = readZipDirectory(source);
  const pickles = [...entries.keys()].filter((name) => /^[^/]+\/data\.pkl$/.test(name) || name === 'data.pkl');
  if (pickles.length !== 1) {
    const hint = [...entries.keys()].some((n) => n.endsWith('constants.pkl'))
      ? ' (a TorchScript archive: save the state_dict instead)'
      : '';
    throw new InputError(file, `not a torch.save zip: expected one <name>/data.pkl, found ${pickles.length}${hint}`);
  }
  const prefix = pickles[0].slice(0, -'data.pkl'.length);
  const byteOrder = entries.get(`${prefix}byteorder`);
  if (byteOrder && readZipEntry(source, byteOrder).toString('latin1').trim() !== 'little') {
    throw new InputError(file, 'big-endian checkpoints are not supported');
  }
  const storages = new Map<string, TorchStorage>();
  const { value } = unpickle(readZipEntry(source, entries.get(pickles[0])!), {
    file,
    globals: torchGlobals(file),
    persistentLoad: makePersistentLoad(file, storages, () => {}),
  });
  const locations = new Map<string, StorageLocation>();
  for (const storage of storages.values()) {
    const entry = entries.get(`${prefix}data/${storage.key}`);
    const byteLength = storage.numel * TORCH_ITEM_SIZE[storage.dtype];
    if (!entry) throw new InputError(file, `storage "${storage.key}" has no record ${prefix}data/${storage.key}`);
    if (entry.size < byteLength) {
      throw new InputError(file, `storage "${storage.key}" needs ${byteLength} bytes but its record has ${entry.size}`);
    }
    locations.set(
      storage.key,
      entry.method === 0 ? { offset: zipDataOffset(source, entry), byteLength } : { entry, byteLength },
    );
  }
  return makeCheckpoint(source, 'zip', value, storages, locations);
}

const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
const LEGACY_PROTOCOL = 1001;

function openLegacy(source: FileSource): TorchCheckpoint {
  const file = source.file;
  const head = source.read(0, Math.min(source.size, 2), 'the header');
  if (head[0] !== 0x80) {
    throw new InputError(
      file,
      'not a PyTorch checkpoint: neither a zip archive nor a pickle (safetensors files end in .safetensors)',
    );
  }
  // The pickles come first and are small; read them in growing windows (never more than the file).
  let window = Math.min(source.size, 1 << 20);
  for (;;) {
    const bytes = source.read(0, window, 'the pickles');
    try {
      return parseLegacy(source, bytes);
    } catch (e) {
      const truncated = e instanceof InputError && /truncated or corrupt/.test(e.message);
      if (!truncated || window >= source.size) throw e;
      window = Math.min(source.size, window * 4);
    }
  }
}

function parseLegacy(source: FileSource, bytes: Buffer): TorchCheckpoint {
  const file = source.file;
  const plain = { file, globals: () => undefined };
  const magic = unpickle(bytes, plain, 0);
  if (BigInt(magic.value as number | bigint) !== LEGACY_MAGIC) {
    throw new InputError(file, "not a PyTorch checkpoint: a pickle without torch.save's magic number");
  }
  const protocol = unpickle(bytes, plain, magic.end);
  if (protocol.value !== LEGACY_PROTOCOL) {
    throw new InputError(file, `unsupported legacy torch.save protocol ${String(protocol.value)}`);
  }
  const sysInfo = unpickle(bytes, plain, protocol.end);
  if (sysInfo.value instanceof Map && sysInfo.value.get('little_endian') === false) {
    throw new InputError(file, 'big-endian checkpoints are not supported');
  }
  const storages = new Map<string, TorchStorage>();
  let declared = 0;
  const object = unpickle(
    bytes,
    {
      file,
      globals: torchGlobals(file),
      persistentLoad: makePersistentLoad(file, storages, (n) => {
        declared += n;
        if (declared > source.size) throw new InputError(file, 'storages declare more bytes than the file holds');
      }),
    },
    sysInfo.end,
  );
  const keys = unpickle(bytes, plain, object.end);
  if (!Array.isArray(keys.value) || !keys.value.every((k) => typeof k === 'string')) {
    throw new InputError(file, 'the storage key list is missing or malformed');
  }
  const locations = new Map<string, StorageLocation>();
  let offset = keys.end;
  for (const key of keys.value as string[]) {
    const storage = storages.get(key);
    if (!storage) throw new InputError(file, `storage "${key}" is listed but no tensor uses it`);
    const count = source.read(offset, 8, `the size of storage "${key}"`).readBigInt64LE(0);
    const byteLength = Number(count) * TORCH_ITEM_SIZE[storage.dtype];
    if (count < 0n || !Number.isSafeInteger(byteLength) || offset + 8 + byteLength > source.size) {
      throw new InputError(file, `storage "${key}" declares ${count} elements, beyond the end of the file`);
    }
    if (Number(count) < storage.numel) {
      throw new InputError(file, `storage "${key}" holds ${count} elements but ${storage.numel} are used`);
    }
    locations.set(key, { offset: offset + 8, byteLength });
    offset += 8 + byteLength;
  }
  for (const key of storages.keys()) {
    if (!locations.has(key)) throw new InputError(file, `storage "${key}" has no data`);
  }
  return makeCheckpoint(source, 'legacy', object.value, storages, locations);
}

function makeCheckpoint(
  source: FileSource,
  format: 'zip' | 'legacy',
  root: unknown,
  storages: Map<string, TorchStorage>,
  locations: Map<string, StorageLocation>,
): TorchCheckpoint {
  let inflated: { key: string; bytes: Buffer } | undefined;
  const storageBytes = (storage: TorchStorage, begin: number, end: number): Buffer => {
    const location = locations.get(storage.key)!;
    if (end > location.byteLength) throw new InputError(source.file, `storage "${storage.key}" is too short`);
    if (location.offset !== undefined) {
      return source.read(location.offset + begin, end - begin, `storage "${storage.key}"`);
    }
    if (inflated?.key !== storage.key) inflated = { key: storage.key, bytes: readZipEntry(source, location.entry!) };
    return inflated.bytes.subarray(begin, end);
  };
  return {
    file: source.file,
    format,
    root,
    storages,
    fileSize: source.size,
    readTensor(tensor, name = '?') {
      const item = TORCH_ITEM_SIZE[tensor.dtype];
      const count = tensor.numel;
      const shape = [...tensor.shape];
      let raw: Buffer;
      if (count === 0) raw = Buffer.alloc(0);
      else if (tensor.contiguous) {
        raw = storageBytes(tensor.storage, tensor.storageOffset * item, (tensor.storageOffset + count) * item);
      } else {
        // Gather a strided view: read the span it covers once, then copy element by element.
        let last = tensor.storageOffset;
        for (let i = 0; i < shape.length; i++) last += (shape[i] - 1) * tensor.strides[i];
        const span = storageBytes(tensor.storage, tensor.storageOffset * item, (last + 1) * item);
        raw = Buffer.allocUnsafe(count * item);
        const index = new Array<number>(shape.length).fill(0);
        let at = 0;
        for (let o = 0; o < count; o++) {
          span.copy(raw, o * item, at * item, at * item + item);
          for (let axis = shape.length - 1; axis >= 0; axis--) {
            index[axis]++;
            at += tensor.strides[axis];
            if (index[axis] < shape[axis]) break;
            at -= tensor.strides[axis] * shape[axis];
            index[axis] = 0;
          }
        }
      }
      // The bytes as they are when they own their buffer (FileSource.read), else an aligned copy.
      const owned = raw.byteOffset === 0 && raw.buffer.byteLength === raw.length;
      const bytes = owned ? new Uint8Array(raw.buffer, 0, raw.length) : Uint8Array.from(raw);
      if (tensor.dtype === 'F64') {
        const wide = new Float64Array(bytes.buffer);
        return { dtype: 'F32', shape, bytes: new Uint8Array(Float32Array.from(wide).buffer) };
      }
      const supported: readonly string[] = ['F32', 'F16', 'BF16', 'I64', 'I32', 'U8'];
      if (!supported.includes(tensor.dtype)) {
        throw new InputError(source.file, `tensor "${name}" is ${tensor.dtype}, which cannot be used as weights`);
      }
      return { dtype: tensor.dtype as SafetensorsDtype, shape, bytes };
    },
    close: () => source.close(),
  };
}
