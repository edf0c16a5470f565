/**
 * What a checkpoint holds, without reading tensor data or starting TensorFlow:
 * its container, every tensor (path, dtype, shape, whether it is a strided view),
 * the other top-level entries, and the ResNet backbones it recognises.
 */
import type { SafetensorsContents } from '../safetensors.js';
import { inferConfig } from '../torchvision.js';
import { TORCH_ITEM_SIZE, TorchTensor, withTorchCheckpoint } from './checkpoint.js';
import { type BackboneCandidate, displayName, findBackbones, flattenTensors } from './find-backbone.js';

export interface InspectedTensor {
  name: string;
  dtype: string;
  shape: number[];
  /** False for a strided view (a transpose, a slice with steps). */
  contiguous: boolean;
  /** Storage key and element offset (tensors sharing a storage have the same key). */
  storage: string;
  storageOffset: number;
}

export interface InspectedBackbone {
  key: string;
  naming: BackboneCandidate['naming'];
  arch: string | null;
  stem: string | null;
  inputChannels: number | null;
  widthMultiplier: number | null;
  tensors: number;
  fcClasses: number | null;
  leftOut: string[];
  /** Layers a torchvision ResNet does not have (the backbone cannot be imported). */
  unsupported: string[];
}

export interface CheckpointSummary {
  file: string;
  container: 'zip' | 'legacy';
  fileBytes: number;
  storages: number;
  storageBytes: number;
  /** Top-level entries that are not tensors, with a short description (`int 3`, `dict (4 entries)`). */
  entries: Record<string, string>;
  tensors: InspectedTensor[];
  backbones: InspectedBackbone[];
}

function describeValue(value: unknown): string {
  if (value === null) return 'None';
  if (value instanceof TorchTensor) return `tensor ${value.dtype} [${value.shape.join(', ')}]`;
  if (value instanceof Map) {
    const tensors = flattenTensors(value).size;
    return `dict (${value.size} entries${tensors ? `, ${tensors} tensors` : ''})`;
  }
  if (Array.isArray(value)) {
    const tensors = flattenTensors(value).size;
    return `list (${value.length} items${tensors ? `, ${tensors} tensors` : ''})`;
  }
  if (value instanceof Set) return `set (${value.size} items)`;
  if (typeof value === 'string') return `str ${JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value)}`;
  if (typeof value === 'number') return `${Number.isInteger(value) ? 'int' : 'float'} ${value}`;
  if (typeof value === 'bigint') return `int ${value}`;
  if (typeof value === 'boolean') return `bool ${value ? 'True' : 'False'}`;
  if (value instanceof Uint8Array) return `bytes (${value.length})`;
  return typeof value;
}

function describeBackbone(candidate: BackboneCandidate): InspectedBackbone {
  const shapes: SafetensorsContents = { metadata: {}, tensors: new Map() };
  for (const [name, tensor] of candidate.tensors) {
    shapes.tensors.set(name, { dtype: 'F32', shape: tensor.shape, bytes: new Uint8Array(0) });
  }
  const config = inferConfig(shapes);
  const fc = candidate.tensors.get('fc.weight');
  return {
    key: displayName(candidate),
    naming: candidate.naming,
    arch: config.arch ?? null,
    stem: config.stem ?? null,
    inputChannels: config.inputChannels ?? null,
    widthMultiplier: config.widthMultiplier ?? null,
    tensors: candidate.tensors.size,
    fcClasses: fc?.shape.length === 2 ? fc.shape[0] : null,
    leftOut: candidate.ignored,
    unsupported: candidate.unsupported,
  };
}

/** Summarises a torch.save file (reads only its pickle). */
export function inspectCheckpoint(file: string): CheckpointSummary {
  return withTorchCheckpoint(file, (checkpoint) => {
    const flat = flattenTensors(checkpoint.root);
    const entries: Record<string, string> = {};
    if (checkpoint.root instanceof Map) {
      for (const [key, value] of checkpoint.root) {
        if (!(value instanceof TorchTensor)) entries[String(key)] = describeValue(value);
      }
    } else if (!(checkpoint.root instanceof TorchTensor)) {
      entries['(root)'] = describeValue(checkpoint.root);
    }
    let storageBytes = 0;
    for (const storage of checkpoint.storages.values()) storageBytes += storage.numel * TORCH_ITEM_SIZE[storage.dtype];
    return {
      file,
      container: checkpoint.format,
      fileBytes: checkpoint.fileSize,
      storages: checkpoint.storages.size,
      storageBytes,
      entries,
      tensors: [...flat].map(([name, t]) => ({
        name,
        dtype: t.dtype,
        shape: t.shape,
        contiguous: t.contiguous,
        storage: t.storage.key,
        storageOffset: t.storageOffset,
      })),
      backbones: findBackbones(flat).map(describeBackbone),
    };
  });
}

/** The summary as text lines. */
export function formatCheckpointSummary(summary: CheckpointSummary, maxTensors = Number.POSITIVE_INFINITY): string {
  const kb = (n: number) => (n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MB` : `${(n / 1024).toFixed(1)} KB`);
  const lines = [
    `${summary.file}: torch.save ${summary.container === 'zip' ? 'zip archive' : 'legacy (pre-1.6) file'}, ` +
      `${kb(summary.fileBytes)}, ${summary.tensors.length} tensors in ${summary.storages} storages (${kb(summary.storageBytes)})`,
  ];
  const entries = Object.entries(summary.entries);
  if (entries.length > 0) lines.push('entries:', ...entries.map(([k, v]) => `  ${k}: ${v}`));
  if (summary.backbones.length === 0) lines.push('backbones: none recognised (torchvision/timm ResNet names)');
  else
    lines.push(
      `backbones (${summary.backbones.length}${summary.backbones.length > 1 ? '; pick one with --key' : ''}):`,
    );
  for (const b of summary.backbones) {
    const what = b.arch
      ? `${b.arch}, stem ${b.stem}, ${b.inputChannels} channel(s), width x${b.widthMultiplier}`
      : 'unknown layout';
    lines.push(
      `  "${b.key}": ${what}, ${b.tensors} tensors, ${b.fcClasses ? `fc ${b.fcClasses} classes` : 'no fc'}` +
        `${b.naming === 'sequential' ? ', nn.Sequential indices' : ''}`,
    );
    if (b.unsupported.length > 0)
      lines.push(
        `    not importable: ${b.unsupported.slice(0, 4).join(', ')}${b.unsupported.length > 4 ? ', ...' : ''}`,
      );
    if (b.leftOut.length > 0)
      lines.push(
        `    left out: ${b.leftOut.slice(0, 4).join(', ')}${b.leftOut.length > 4 ? `, ... (${b.leftOut.length})` : ''}`,
      );
  }
  lines.push('tensors:');
  const width = Math.min(60, Math.max(...summary.tensors.map((t) => t.name.length), 4));
  for (const t of summary.tensors.slice(0, maxTensors)) {
    const view = t.contiguous ? '' : '  (strided view)';
    lines.push(`  ${t.name.padEnd(width)}  ${t.dtype.padEnd(4)}  [${t.shape.join(', ')}]${view}`);
  }
  if (summary.tensors.length > maxTensors) lines.push(`  ... ${summary.tensors.length - maxTensors} more`);
  return lines.join('\n');
}
