/**
 * A checkpoint's backbone as torchvision-named tensors: open the file, find the
 * backbone (find-backbone.ts), read only its tensors. What the rest of
 * src/export does with a safetensors file then applies unchanged.
 */
import type { SafetensorsContents, SafetensorsEntry } from '../safetensors.js';
import { withTorchCheckpoint } from './checkpoint.js';
import { displayName, findBackbones, flattenTensors, pickBackbone } from './find-backbone.js';

export interface TorchBackboneContents extends SafetensorsContents {
  /** Where in the file the backbone was (`state_dict.backbone`, `(top level)`). */
  backboneKey: string;
  /** The other backbones the file holds (momentum encoders, teacher/student). */
  otherBackbones: string[];
  /** Keys beside the backbone that were left out (projection heads, queues). */
  ignored: string[];
  format: 'zip' | 'legacy';
}

/** Reads the backbone `key` names (or the only one) from a torch.save file. */
export function readTorchBackbone(file: string, key?: string): TorchBackboneContents {
  return withTorchCheckpoint(file, (checkpoint) => {
    const candidates = findBackbones(flattenTensors(checkpoint.root));
    const picked = pickBackbone(candidates, file, key);
    const tensors = new Map<string, SafetensorsEntry>();
    for (const [name, tensor] of picked.tensors) tensors.set(name, checkpoint.readTensor(tensor, name));
    return {
      metadata: {},
      tensors,
      backboneKey: displayName(picked),
      otherBackbones: candidates.filter((c) => c !== picked).map(displayName),
      ignored: picked.ignored,
      format: checkpoint.format,
    };
  });
}
