/**
 * Helpers every task's `validate()` uses: merge user options over the typed
 * defaults, reject unknown keys, and check each value with the standard message
 * "Expected X for task.options.<key> but received Z".
 */
import { describeValue, invalidOption, UsageError } from '../src/util/errors.js';

/** The recipe path of an option, as it appears in error messages. */
export function optionKey(key: string): string {
  return `task.options.${key}`;
}

/**
 * Returns `defaults` overridden by the keys of `options` (undefined or null
 * `options` means all defaults). Throws on a non-object or an unknown key.
 */
export function mergeOptions<Options extends object>(defaults: Options, options: unknown): Record<string, unknown> {
  if (options === undefined || options === null) return { ...(defaults as Record<string, unknown>) };
  if (typeof options !== 'object' || Array.isArray(options)) {
    throw invalidOption('task.options', 'an object', options);
  }
  const known = Object.keys(defaults);
  for (const key of Object.keys(options)) {
    if (!known.includes(key)) {
      throw new UsageError(
        `Unknown key ${optionKey(key)} (received ${describeValue((options as Record<string, unknown>)[key])}); valid keys: ${known.join(', ')}`,
      );
    }
  }
  const merged: Record<string, unknown> = { ...(defaults as Record<string, unknown>) };
  for (const [key, value] of Object.entries(options)) {
    if (value !== undefined) merged[key] = value;
  }
  return merged;
}

export function checkInteger(key: string, value: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer between ${min} and ${max}`;
    throw invalidOption(optionKey(key), range, value);
  }
  return value;
}

/** A finite number in [min, max]; `exclusiveMin` makes the lower bound open. */
export function checkNumber(key: string, value: unknown, min: number, max: number, exclusiveMin = false): number {
  const low = exclusiveMin ? `> ${min}` : `>= ${min}`;
  if (
    typeof value !== 'number' ||
    !Number.isFinite(value) ||
    value < min ||
    (exclusiveMin && value === min) ||
    value > max
  ) {
    const range = Number.isFinite(max) ? `a number ${low} and <= ${max}` : `a number ${low}`;
    throw invalidOption(optionKey(key), range, value);
  }
  return value;
}

export function checkOneOf<T extends string | number>(key: string, value: unknown, allowed: readonly T[]): T {
  if (!(allowed as readonly unknown[]).includes(value)) {
    const list = allowed.map((a) => (typeof a === 'string' ? `"${a}"` : String(a))).join(', ');
    throw invalidOption(optionKey(key), `one of ${list}`, value);
  }
  return value as T;
}

export function checkBoolean(key: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw invalidOption(optionKey(key), 'true or false', value);
  return value;
}

/** A [low, high] pair with min <= low <= high <= max. */
export function checkRange(key: string, value: unknown, min: number, max: number): [number, number] {
  if (
    !Array.isArray(value) ||
    value.length !== 2 ||
    !value.every((v) => typeof v === 'number' && Number.isFinite(v)) ||
    value[0] < min ||
    value[1] > max ||
    value[0] > value[1]
  ) {
    throw invalidOption(optionKey(key), `[low, high] with ${min} <= low <= high <= ${max}`, value);
  }
  return [value[0], value[1]];
}

/** Checks the shared augmentation options of the two-view methods (see TWO_VIEW_AUGMENTATION_DOCS). */
export function checkTwoViewAugmentation(merged: Record<string, unknown>): {
  cropScale: [number, number];
  colorJitterStrength: number;
  blur: 'auto' | 'on' | 'off';
} {
  return { cropScale: checkRange('cropScale', merged.cropScale, 0.01, 1), ...checkColorAugmentation(merged) };
}

/** The colour options of the SimCLR views (`colorJitterStrength`, `blur`), which DINO shares too. */
export function checkColorAugmentation(merged: Record<string, unknown>): {
  colorJitterStrength: number;
  blur: 'auto' | 'on' | 'off';
} {
  return {
    colorJitterStrength: checkNumber('colorJitterStrength', merged.colorJitterStrength, 0, 2),
    blur: checkOneOf('blur', merged.blur, ['auto', 'on', 'off'] as const),
  };
}

/** An integer >= min, or the one word that stands for a size chosen later (`"featureDim"`, `"auto"`). */
export function checkIntegerOrWord<Word extends string>(
  key: string,
  value: unknown,
  min: number,
  word: Word,
): number | Word {
  if (value === word) return word;
  if (!(typeof value === 'number' && Number.isInteger(value) && value >= min)) {
    throw invalidOption(optionKey(key), `an integer >= ${min} or "${word}"`, value);
  }
  return value;
}

/** `momentum` in [0, 1] and `momentumEnd` in [momentum, 1]: a momentum target's cosine rise. */
export function checkMomentumRange(merged: Record<string, unknown>): { momentum: number; momentumEnd: number } {
  const momentum = checkNumber('momentum', merged.momentum, 0, 1);
  return { momentum, momentumEnd: checkNumber('momentumEnd', merged.momentumEnd, momentum, 1) };
}

/** `projectionDim` and `hiddenDim` of a projector MLP, integers in [1, 65536]. */
export function checkProjectorSizes(merged: Record<string, unknown>): { projectionDim: number; hiddenDim: number } {
  return {
    projectionDim: checkInteger('projectionDim', merged.projectionDim, 1, 65536),
    hiddenDim: checkInteger('hiddenDim', merged.hiddenDim, 1, 65536),
  };
}

/**
 * A task's `validate()`: merges the user's options over `defaults` (an unknown key
 * is an error naming it), then resolves and checks every value with `check`.
 */
export function validatorFor<Options extends object>(
  defaults: Options,
  check: (merged: Record<string, unknown>) => Options,
): (options: unknown) => Options {
  return (options) => check(mergeOptions(defaults, options));
}

/** The options SimCLR and MoCo share: the InfoNCE temperature and the projector's sizes (hidden may be "featureDim"). */
export function checkContrastiveHead(merged: Record<string, unknown>): {
  temperature: number;
  projectionDim: number;
  hiddenDim: number | 'featureDim';
} {
  return {
    temperature: checkNumber('temperature', merged.temperature, 0, 10, true),
    projectionDim: checkInteger('projectionDim', merged.projectionDim, 1, 65536),
    hiddenDim: checkIntegerOrWord('hiddenDim', merged.hiddenDim, 1, 'featureDim'),
  };
}
