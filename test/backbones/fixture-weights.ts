/**
 * TypeScript twin of scripts/torch/fixture_weights.py: formula-defined tensors
 * (by torchvision name and flat index in PyTorch layout) so parity tests need no
 * committed weights. Must stay bit-identical to the Python version.
 */

function fnv1a32(text: string): number {
  let h = 0x811c9dc5;
  for (const byte of Buffer.from(text, 'utf8')) {
    h ^= byte;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

function fmix32(input: number): number {
  let h = input >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
}

/** (offset, scale) of a tensor, as in tensor_scale() of the Python file. */
function tensorScale(name: string, shape: number[]): [number, number] {
  if (name === 'input') return [0, 2];
  if (name.endsWith('running_var')) return [1.25, 0.25];
  if (name.endsWith('running_mean')) return [0, 0.1];
  if (name.endsWith('.bias')) return [0, 0.1];
  if (name.endsWith('.weight') && shape.length === 1) {
    const last = (name.includes('layer') && name.endsWith('bn2.weight')) || name.endsWith('bn3.weight');
    return last ? [0.2, 0.05] : [1, 0.2];
  }
  if (name.endsWith('.weight') && shape.length === 2) return [0, Math.sqrt(3 / shape[1])];
  const fanIn = shape.slice(1).reduce((a, b) => a * b, 1);
  return [0, Math.sqrt(6 / fanIn)];
}

/** The tensor `name` of `shape` (PyTorch layout, row-major). */
export function makeTensor(name: string, shape: number[]): Float32Array {
  const count = shape.reduce((a, b) => a * b, 1);
  const [offset, scale] = tensorScale(name, shape);
  const seed = fnv1a32(name);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    // (seed + i * 0x9E3779B9) mod 2^32, exact: Math.imul wraps the product to 32 bits.
    const h = fmix32((seed + Math.imul(i, 0x9e3779b9)) >>> 0);
    out[i] = offset + scale * (2 * (h / 4294967296) - 1);
  }
  return out;
}
