/**
 * A restricted pickle reader, in the spirit of `torch.load(weights_only=True)`.
 *
 * Pickle is a small stack machine whose GLOBAL/REDUCE opcodes normally import
 * any Python name and call it with any arguments; that is how a pickle runs
 * `os.system(...)`. Here a GLOBAL is looked up in a fixed table of our own
 * TypeScript stand-ins (ordered dicts, sets, the tensor rebuild functions the
 * caller passes in) and every other name is refused with an error naming it
 * (`module.name`) before anything else happens. Nothing from the file is ever
 * imported, evaluated or executed; extension codes (EXT*) and out-of-band
 * buffers are refused too.
 *
 * Python values become: None -> null, bool -> boolean, int -> number (bigint
 * beyond 2^53), float -> number, str -> string, bytes -> Uint8Array, list and
 * tuple -> array, dict and OrderedDict -> Map, set -> Set.
 *
 * Every length in the stream is checked against the bytes that remain, so a
 * hostile length cannot make the reader allocate more than the pickle's size.
 */
import { InputError } from '../../util/errors.js';

/** A global the table allows: a value (e.g. a dtype token) and/or a function we implement. */
export interface AllowedGlobal {
  /** `module.name`, for messages. */
  readonly qualifiedName: string;
  /** Called by REDUCE / NEWOBJ with the pickled argument tuple. Absent: the global is a token only. */
  call?(args: unknown[]): unknown;
  /** BUILD (`__setstate__`) on a value this global made; absent: BUILD on it is an error. */
  build?(target: unknown, state: unknown): unknown;
}

export interface UnpickleOptions {
  /** Names errors. */
  file: string;
  /** What a name may be; `undefined` means refused. */
  globals: (module: string, name: string) => AllowedGlobal | undefined;
  /** Resolves a persistent id (torch's storages); absent: persistent ids are refused. */
  persistentLoad?: (pid: unknown) => unknown;
}

/** Attributes set by BUILD on a dict (torch keeps `_metadata` on a state_dict this way). */
export const dictAttributes = new WeakMap<Map<unknown, unknown>, unknown>();

/** The collections every pickle may use. */
export function builtinGlobal(module: string, name: string): AllowedGlobal | undefined {
  const qualifiedName = `${module}.${name}`;
  switch (qualifiedName) {
    case 'collections.OrderedDict':
      return {
        qualifiedName,
        call: (args) => {
          const out = new Map<unknown, unknown>();
          if (args.length > 0 && Array.isArray(args[0])) {
            for (const pair of args[0] as unknown[]) {
              if (Array.isArray(pair) && pair.length === 2) out.set(pair[0], pair[1]);
            }
          }
          return out;
        },
        build: (target, state) => {
          if (target instanceof Map) dictAttributes.set(target, state);
          return target;
        },
      };
    case 'builtins.set':
    case 'builtins.frozenset':
      return { qualifiedName, call: (args) => new Set(Array.isArray(args[0]) ? (args[0] as unknown[]) : []) };
    case '_codecs.encode':
      // Protocol 2 writes Python 3 bytes as _codecs.encode(text, 'latin1').
      return {
        qualifiedName,
        call: (args) => {
          const [text, encoding] = args;
          if (typeof text !== 'string' || (encoding !== 'latin1' && encoding !== 'latin-1')) {
            throw new Error(`_codecs.encode is only rebuilt for (str, 'latin1'), got ${describe(encoding)}`);
          }
          return Uint8Array.from(text, (c) => c.charCodeAt(0) & 0xff);
        },
      };
    default:
      return undefined;
  }
}

/** Python 2 module names that Python 3's unpickler maps to Python 3 ones (a subset of _compat_pickle). */
const PYTHON2_MODULES: Record<string, string> = {
  __builtin__: 'builtins',
  exceptions: 'builtins',
  copy_reg: 'copyreg',
  commands: 'subprocess',
  cPickle: 'pickle',
  UserDict: 'collections',
  UserList: 'collections',
  StringIO: 'io',
  cStringIO: 'io',
  thread: '_thread',
  Queue: 'queue',
  urllib2: 'urllib.request',
  httplib: 'http.client',
};

function describe(value: unknown): string {
  if (value === null) return 'None';
  if (Array.isArray(value)) return 'a list/tuple';
  if (value instanceof Map) return 'a dict';
  if (typeof value === 'object') return (value as { constructor?: { name?: string } }).constructor?.name ?? 'an object';
  return typeof value;
}

function isAllowedGlobal(value: unknown): value is AllowedGlobal {
  return typeof value === 'object' && value !== null && 'qualifiedName' in value;
}

/** Two's-complement little-endian integer of LONG1/LONG4. */
function decodeLong(bytes: Uint8Array): number | bigint {
  if (bytes.length === 0) return 0;
  let value = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[i]);
  if (bytes[bytes.length - 1] & 0x80) value -= 1n << BigInt(bytes.length * 8);
  return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
}

function parseTextInt(text: string): number | bigint {
  const t = text.endsWith('L') ? text.slice(0, -1) : text;
  if (!/^[-+]?\d+$/.test(t)) throw new Error(`bad integer literal ${JSON.stringify(text)}`);
  const big = BigInt(t);
  return big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
}

/** Reads one pickle from `bytes` starting at `start`; returns the value and where the pickle ended. */
export function unpickle(bytes: Uint8Array, options: UnpickleOptions, start = 0): { value: unknown; end: number } {
  const { file } = options;
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = start;
  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();
  const fail = (message: string) => new InputError(file, `unreadable pickle at byte ${pos}: ${message}`);

  const need = (n: number) => {
    if (n < 0 || pos + n > buffer.length) {
      throw fail(`needs ${n} more byte(s) but the pickle has ${buffer.length - pos} (truncated or corrupt)`);
    }
  };
  const take = (n: number): Buffer => {
    need(n);
    const out = buffer.subarray(pos, pos + n);
    pos += n;
    return out;
  };
  const u8 = () => take(1)[0];
  const u16 = () => take(2).readUInt16LE(0);
  const u32 = () => take(4).readUInt32LE(0);
  const u64 = () => {
    const value = take(8).readBigUInt64LE(0);
    if (value > BigInt(buffer.length)) throw fail(`length ${value} exceeds the pickle's size`);
    return Number(value);
  };
  const line = (): string => {
    const end = buffer.indexOf(0x0a, pos);
    if (end < 0) throw fail('a text argument has no end of line');
    const text = buffer.subarray(pos, end).toString('latin1');
    pos = end + 1;
    return text;
  };
  const pop = (): unknown => {
    if (stack.length === 0 || (marks.length > 0 && stack.length <= marks[marks.length - 1])) {
      throw fail('stack underflow');
    }
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length === 0) throw fail('stack underflow');
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    const at = marks.pop();
    if (at === undefined) throw fail('no MARK to pop to');
    return stack.splice(at);
  };
  const resolveGlobal = (written: string, name: string): AllowedGlobal => {
    // Protocol 0-2 pickles name Python 2 modules; Python 3 maps them back (what would really be loaded).
    const module = PYTHON2_MODULES[written] ?? written;
    const allowed = builtinGlobal(module, name) ?? options.globals(module, name);
    if (!allowed) {
      // os.system pickles as posix.system (nt.system on Windows).
      const alias =
        module === 'posix' || module === 'nt'
          ? ` (os.${name})`
          : module !== written
            ? ` (written as ${written}.${name})`
            : '';
      throw new InputError(
        file,
        `refused to load the global "${module}.${name}"${alias}: only tensors, storages and (ordered) dicts are rebuilt ` +
          '(like torch.load(weights_only=True)); nothing in the file is executed',
      );
    }
    return allowed;
  };
  const callGlobal = (callable: unknown, args: unknown): unknown => {
    if (!isAllowedGlobal(callable) || !callable.call) {
      throw fail(`cannot call ${isAllowedGlobal(callable) ? `"${callable.qualifiedName}"` : describe(callable)}`);
    }
    if (!Array.isArray(args)) throw fail(`arguments of "${callable.qualifiedName}" are not a tuple`);
    try {
      return callable.call(args);
    } catch (e) {
      if (e instanceof InputError) throw e;
      throw fail(`${callable.qualifiedName}: ${(e as Error).message}`);
    }
  };
  /** The top `count` values, popped, in stack order. */
  const popItems = (count: number): unknown[] => {
    const items = new Array<unknown>(count);
    for (let i = count - 1; i >= 0; i--) items[i] = pop();
    return items;
  };
  const setItems = (target: unknown, items: unknown[]) => {
    if (!(target instanceof Map)) throw fail(`SETITEM(S) on ${describe(target)}`);
    if (items.length % 2 !== 0) throw fail('SETITEMS with an odd number of values');
    for (let i = 0; i < items.length; i += 2) target.set(items[i], items[i + 1]);
  };
  const appendItems = (target: unknown, items: unknown[]) => {
    if (Array.isArray(target)) target.push(...items);
    else if (target instanceof Set) for (const item of items) target.add(item);
    else throw fail(`APPEND(S) on ${describe(target)}`);
  };
  // SETITEM(S) and APPEND(S) take their items off the stack first, then fill the value below them.
  const setItemsOnTop = (items: unknown[]) => setItems(top(), items);
  const appendItemsOnTop = (items: unknown[]) => appendItems(top(), items);
  // Which global made a value, so BUILD can ask it how to set state.
  const madeBy = new WeakMap<object, AllowedGlobal>();
  const remember = (value: unknown, maker: AllowedGlobal) => {
    if (typeof value === 'object' && value !== null) madeBy.set(value, maker);
    return value;
  };

  for (;;) {
    const opcodeAt = pos;
    const op = u8();
    switch (op) {
      case 0x80: // PROTO
        if (u8() > 5) throw fail('pickle protocol above 5');
        break;
      case 0x95: // FRAME: framing hint only
        u64();
        break;
      case 0x2e: // STOP
        if (stack.length === 0) throw fail('STOP with an empty stack');
        return { value: stack[stack.length - 1], end: pos };
      case 0x28: // MARK
        marks.push(stack.length);
        break;
      case 0x30: // POP
        if (marks.length > 0 && stack.length === marks[marks.length - 1]) marks.pop();
        else pop();
        break;
      case 0x31: // POP_MARK
        popMark();
        break;
      case 0x32: // DUP
        stack.push(top());
        break;
      case 0x4e: // NONE
        stack.push(null);
        break;
      case 0x88: // NEWTRUE
        stack.push(true);
        break;
      case 0x89: // NEWFALSE
        stack.push(false);
        break;
      case 0x4a: // BININT
        stack.push(take(4).readInt32LE(0));
        break;
      case 0x4b: // BININT1
        stack.push(u8());
        break;
      case 0x4d: // BININT2
        stack.push(u16());
        break;
      case 0x49: {
        // INT (text); "00"/"01" are False/True in protocol 0
        const text = line();
        stack.push(text === '00' ? false : text === '01' ? true : parseTextInt(text));
        break;
      }
      case 0x4c: // LONG (text)
        stack.push(parseTextInt(line()));
        break;
      case 0x8a: // LONG1
        stack.push(decodeLong(take(u8())));
        break;
      case 0x8b: {
        // LONG4
        const n = take(4).readInt32LE(0);
        if (n < 0) throw fail('negative LONG4 length');
        stack.push(decodeLong(take(n)));
        break;
      }
      case 0x46: {
        // FLOAT (text)
        const value = Number(line());
        if (Number.isNaN(value)) throw fail('bad float literal');
        stack.push(value);
        break;
      }
      case 0x47: // BINFLOAT (big-endian double)
        stack.push(take(8).readDoubleBE(0));
        break;
      case 0x58: // BINUNICODE
        stack.push(take(u32()).toString('utf8'));
        break;
      case 0x8c: // SHORT_BINUNICODE
        stack.push(take(u8()).toString('utf8'));
        break;
      case 0x8d: // BINUNICODE8
        stack.push(take(u64()).toString('utf8'));
        break;
      case 0x56: // UNICODE (raw-unicode-escape text)
        stack.push(
          line().replace(/\\u([0-9a-fA-F]{4})/g, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16))),
        );
        break;
      case 0x55: // SHORT_BINSTRING (Python 2 str)
        stack.push(take(u8()).toString('latin1'));
        break;
      case 0x54: {
        // BINSTRING
        const n = take(4).readInt32LE(0);
        stack.push(take(n).toString('latin1'));
        break;
      }
      case 0x53: {
        // STRING (quoted repr); only plain quoted text is accepted
        const text = line();
        const quoted = /^(['"])(.*)\1$/.exec(text);
        if (!quoted || quoted[2].includes('\\')) throw fail('STRING with escapes is not supported');
        stack.push(quoted[2]);
        break;
      }
      case 0x43: // SHORT_BINBYTES
        stack.push(Uint8Array.from(take(u8())));
        break;
      case 0x42: // BINBYTES
        stack.push(Uint8Array.from(take(u32())));
        break;
      case 0x8e: // BINBYTES8
      case 0x96: // BYTEARRAY8
        stack.push(Uint8Array.from(take(u64())));
        break;
      case 0x29: // EMPTY_TUPLE
        stack.push([]);
        break;
      case 0x85: // TUPLE1
        stack.push(popItems(1));
        break;
      case 0x86: // TUPLE2
        stack.push(popItems(2));
        break;
      case 0x87: // TUPLE3
        stack.push(popItems(3));
        break;
      case 0x74: // TUPLE
      case 0x6c: // LIST
        stack.push(popMark());
        break;
      case 0x5d: // EMPTY_LIST
        stack.push([]);
        break;
      case 0x61: // APPEND
        appendItemsOnTop(popItems(1));
        break;
      case 0x65: // APPENDS
        appendItemsOnTop(popMark());
        break;
      case 0x7d: // EMPTY_DICT
        stack.push(new Map());
        break;
      case 0x64: {
        // DICT
        const dict = new Map();
        setItems(dict, popMark());
        stack.push(dict);
        break;
      }
      case 0x73: // SETITEM
        setItemsOnTop(popItems(2));
        break;
      case 0x75: // SETITEMS
        setItemsOnTop(popMark());
        break;
      case 0x8f: // EMPTY_SET
        stack.push(new Set());
        break;
      case 0x90: {
        // ADDITEMS
        const items = popMark();
        const target = top();
        if (!(target instanceof Set)) throw fail(`ADDITEMS on ${describe(target)}`);
        for (const item of items) target.add(item);
        break;
      }
      case 0x91: // FROZENSET
        stack.push(new Set(popMark()));
        break;
      case 0x70: // PUT (text)
        memo.set(Number(parseTextInt(line())), top());
        break;
      case 0x71: // BINPUT
        memo.set(u8(), top());
        break;
      case 0x72: // LONG_BINPUT
        memo.set(u32(), top());
        break;
      case 0x94: // MEMOIZE
        memo.set(memo.size, top());
        break;
      case 0x67: // GET (text)
      case 0x68: // BINGET
      case 0x6a: {
        // LONG_BINGET
        const index = op === 0x67 ? Number(parseTextInt(line())) : op === 0x68 ? u8() : u32();
        if (!memo.has(index)) throw fail(`memo entry ${index} was never stored`);
        stack.push(memo.get(index));
        break;
      }
      case 0x63: {
        // GLOBAL "module\nname\n"
        const module = line();
        const name = line();
        stack.push(resolveGlobal(module, name));
        break;
      }
      case 0x93: {
        // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') throw fail('STACK_GLOBAL needs two strings');
        stack.push(resolveGlobal(module, name));
        break;
      }
      case 0x69: {
        // INST "module\nname\n": the class is checked like a GLOBAL, then called with the marked values
        const maker = resolveGlobal(line(), line());
        stack.push(remember(callGlobal(maker, popMark()), maker));
        break;
      }
      case 0x6f: {
        // OBJ
        const values = popMark();
        const maker = values.shift();
        stack.push(remember(callGlobal(maker, values), maker as AllowedGlobal));
        break;
      }
      case 0x52: {
        // REDUCE
        const args = pop();
        const callable = pop();
        stack.push(remember(callGlobal(callable, args), callable as AllowedGlobal));
        break;
      }
      case 0x81: {
        // NEWOBJ (cls.__new__(cls, *args))
        const args = pop();
        const cls = pop();
        stack.push(remember(callGlobal(cls, args), cls as AllowedGlobal));
        break;
      }
      case 0x92: {
        // NEWOBJ_EX
        const kwargs = pop();
        const args = pop();
        const cls = pop();
        if (!(kwargs instanceof Map) || kwargs.size > 0) throw fail('NEWOBJ_EX with keyword arguments');
        stack.push(remember(callGlobal(cls, args), cls as AllowedGlobal));
        break;
      }
      case 0x62: {
        // BUILD
        const state = pop();
        const target = top();
        const maker = typeof target === 'object' && target !== null ? madeBy.get(target) : undefined;
        if (!maker?.build) {
          throw fail(`cannot set state on ${maker ? `"${maker.qualifiedName}"` : describe(target)}`);
        }
        stack[stack.length - 1] = maker.build(target, state);
        break;
      }
      case 0x50: // PERSID (text)
      case 0x51: {
        // BINPERSID
        const pid = op === 0x50 ? line() : pop();
        if (!options.persistentLoad) throw fail('persistent ids are not allowed here');
        stack.push(options.persistentLoad(pid));
        break;
      }
      case 0x82:
      case 0x83:
      case 0x84:
        throw fail('extension codes (EXT1/2/4) name arbitrary globals and are refused');
      case 0x97:
      case 0x98:
        throw fail('out-of-band buffers are refused');
      default:
        pos = opcodeAt;
        throw fail(`unknown opcode 0x${op.toString(16).padStart(2, '0')}`);
    }
  }
}
