/**
 * Backbone registry (timm-style explicit registration): `createBackbone('resnet18', options)`.
 * An unknown name is an error that lists the valid names.
 */
import { assertNumber, assertOneOf, invalidOption, UsageError } from '../util/errors.js';
import { createRng, type Rng } from '../util/rng.js';
import { type InitMode, ResNet } from './resnet.js';
import type { Backbone, BackboneConfig, ResNetArch, Stem } from './types.js';

export interface BackboneOptions {
  /** 1 for grayscale, 3 for RGB. Default 3. */
  inputChannels?: 1 | 3;
  /** Multiplies every stage's width, in (0, 8]. Default 1 (torchvision widths 64-512). */
  widthMultiplier?: number;
  /** `imagenet` (7x7/2 conv + 3x3/2 max pool, default) or `small` (3x3/1 conv, no pool; 28-64 px inputs). */
  stem?: Stem;
  /** Seed of the initialization (ignored when `rng` is given). Default 0. */
  seed?: number | string;
  /** Random stream the initialization draws from (`rng.derive('init', name)` per conv). */
  rng?: Rng;
  /** `kaiming` (default) or `none` (all-zero convs; for loading weights right after). */
  init?: InitMode;
}

export type BackboneFactory = (config: BackboneConfig, init: InitMode, rng: Rng) => Backbone;

const REGISTRY = new Map<string, BackboneFactory>();

/** Adds an architecture to the registry (the ResNets are registered below). */
export function registerBackbone(name: string, factory: BackboneFactory): void {
  REGISTRY.set(name, factory);
}

for (const arch of ['resnet18', 'resnet34', 'resnet50'] as const) {
  registerBackbone(arch, (config, init, rng) => new ResNet({ ...config, arch }, init, rng));
}

/** Names accepted by {@link createBackbone}. */
export function backboneNames(): string[] {
  return [...REGISTRY.keys()];
}

export const STEMS: readonly Stem[] = ['imagenet', 'small'];

/** Validates options into a full BackboneConfig (errors name the option, the expectation and the value). */
export function resolveBackboneConfig(name: string, options: BackboneOptions = {}): BackboneConfig {
  if (!REGISTRY.has(name)) {
    throw new UsageError(`Unknown backbone "${name}". Valid names: ${backboneNames().join(', ')}`);
  }
  const inputChannels = options.inputChannels ?? 3;
  if (inputChannels !== 1 && inputChannels !== 3) throw invalidOption('inputChannels', '1 or 3', inputChannels);
  return {
    arch: name as ResNetArch,
    inputChannels,
    widthMultiplier: assertNumber('widthMultiplier', options.widthMultiplier ?? 1, 1 / 64, 8),
    stem: assertOneOf('stem', options.stem ?? 'imagenet', STEMS),
  };
}

/**
 * Builds a backbone by name. Example:
 * `createBackbone('resnet18', { inputChannels: 1, stem: 'small', seed: 7 })`.
 */
export function createBackbone(name: string, options: BackboneOptions = {}): Backbone {
  const config = resolveBackboneConfig(name, options);
  const rng = options.rng ?? createRng(options.seed ?? 0);
  return REGISTRY.get(name)!(config, options.init ?? 'kaiming', rng);
}
