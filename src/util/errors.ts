/** One place for every invalid-option error: "Expected X for Y but received Z". */

/** An error in what the user gave (a recipe key, an option, a file); the CLI exits 2 for these. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** A problem with an input file (corrupt, truncated, wrong format). Names the file. */
export class InputError extends Error {
  override name = 'InputError';
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`);
  }
}

/** Writing an output file failed; names the file and the reason (`no space left on the device (ENOSPC)`). Exit 1. */
export class WriteError extends Error {
  override name = 'WriteError';
  constructor(
    readonly file: string,
    readonly code: string | undefined,
    readonly reason: string,
  ) {
    super(`cannot write ${file}: ${reason}`);
  }
}

export function describeValue(value: unknown): string {
  if (value === undefined) return 'undefined';
  if (value === null) return 'null';
  if (typeof value === 'string') return `"${value}" (string)`;
  if (Array.isArray(value)) return `${JSON.stringify(value).slice(0, 60)} (array)`;
  if (typeof value === 'object') return `${JSON.stringify(value).slice(0, 60)} (object)`;
  return `${String(value)} (${typeof value})`;
}

/** Builds the standard message: `Expected <expected> for <key> but received <value>`. */
export function invalidOption(key: string, expected: string, received: unknown): UsageError {
  return new UsageError(`Expected ${expected} for ${key} but received ${describeValue(received)}`);
}

export function assertInteger(key: string, value: unknown, min = -Infinity, max = Infinity): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw invalidOption(key, `an integer between ${min} and ${max}`, value);
  }
  return value;
}

export function assertNumber(key: string, value: unknown, min = -Infinity, max = Infinity): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw invalidOption(key, `a number between ${min} and ${max}`, value);
  }
  return value;
}

export function assertOneOf<T extends string>(key: string, value: unknown, allowed: readonly T[]): T {
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    throw invalidOption(key, `one of ${allowed.map((a) => `"${a}"`).join(', ')}`, value);
  }
  return value as T;
}
