/**
 * Finds ResNet backbones inside what a checkpoint holds, wherever training code
 * put them:
 *
 * - a bare state_dict, or one nested under `state_dict`, `model`, `model_state`,
 *   `teacher`/`student`, ... (nested dict keys join with `.`);
 * - key prefixes such as `module.` (DataParallel), `_orig_mod.` (torch.compile),
 *   `backbone.`, `encoder.`, `model.`, in any combination;
 * - several backbones in one file (the online and momentum/target encoders of
 *   contrastive methods, a teacher and a student): each is a candidate, named by
 *   its path (`state_dict.module.encoder_q`), and one must be picked (`key`);
 * - torchvision names (which timm's ResNets share: conv1, bn1, layerN.i.convK,
 *   downsample.0/1, fc) or the child indices of `nn.Sequential(*resnet.children())`
 *   (0 conv1, 1 bn1, 4-7 layer1-4, as lightly's examples build backbones).
 *
 * Only names are looked at here; no tensor data is read.
 */
import { InputError } from '../../util/errors.js';
import { TorchTensor } from './checkpoint.js';

/** Every tensor reachable from `root`, by its joined path (`state_dict.backbone.conv1.weight`). */
export function flattenTensors(root: unknown): Map<string, TorchTensor> {
  const out = new Map<string, TorchTensor>();
  const seen = new Set<object>();
  const visit = (value: unknown, path: string) => {
    if (value instanceof TorchTensor) {
      if (!out.has(path)) out.set(path, value);
      return;
    }
    if (typeof value !== 'object' || value === null || seen.has(value)) return;
    seen.add(value);
    const join = (key: unknown) => (path === '' ? String(key) : `${path}.${String(key)}`);
    if (value instanceof Map) {
      for (const [key, child] of value) {
        if (typeof key === 'string' || typeof key === 'number') visit(child, join(key));
      }
    } else if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) visit(value[i], join(i));
    }
  };
  visit(root, '');
  return out;
}

/** torchvision parameter and buffer names of a ResNet (and its fc). */
const TORCHVISION_NAME =
  /^(conv1|bn1|layer[1-4]\.\d+\.(conv[1-3]|bn[1-3]|downsample\.[01])|fc)\.(weight|bias|running_mean|running_var|num_batches_tracked)$/;
/** Names that belong to a ResNet's body but that our ResNet does not have (timm's deep stems, SE, avg-down...). */
const RESNET_BODY = /^(conv1|bn1|layer[1-4])\./;

/** `nn.Sequential(*resnet.children())` child index -> torchvision module name. */
const SEQUENTIAL_CHILDREN: Record<string, string> = {
  0: 'conv1',
  1: 'bn1',
  4: 'layer1',
  5: 'layer2',
  6: 'layer3',
  7: 'layer4',
  9: 'fc',
};

export interface BackboneCandidate {
  /** The path of the backbone in the file: `state_dict.backbone`, or `` for a bare torchvision state_dict. */
  name: string;
  /** The prefix its keys carry (`name.` or ``). */
  prefix: string;
  naming: 'torchvision' | 'sequential';
  /** torchvision name -> tensor. */
  tensors: Map<string, TorchTensor>;
  /** Keys under the prefix that are not part of a torchvision ResNet (heads, queues...): not imported. */
  ignored: string[];
  /** Keys that look like a ResNet's but that a torchvision ResNet has no place for. */
  unsupported: string[];
}

export function displayName(candidate: { name: string }): string {
  return candidate.name === '' ? '(top level)' : candidate.name;
}

function rename(naming: BackboneCandidate['naming'], key: string): string {
  if (naming === 'torchvision') return key;
  const dot = key.indexOf('.');
  const mapped = SEQUENTIAL_CHILDREN[key.slice(0, dot)];
  return mapped ? mapped + key.slice(dot) : key;
}

/** Every ResNet backbone in the flattened tensors. */
export function findBackbones(tensors: Map<string, TorchTensor>): BackboneCandidate[] {
  const found: BackboneCandidate[] = [];
  const is4d = (key: string) => tensors.get(key)?.shape.length === 4;
  for (const key of tensors.keys()) {
    // A backbone is wherever a first residual block is (layer1.0.conv1, or child 4 of a Sequential);
    // its stem is then checked with the other keys (a deep stem is reported, not missed).
    const under = (suffix: string) =>
      key.endsWith(suffix) && (key.length === suffix.length || key[key.length - suffix.length - 1] === '.')
        ? key.slice(0, -suffix.length)
        : undefined;
    let prefix = under('layer1.0.conv1.weight');
    let naming: BackboneCandidate['naming'] = 'torchvision';
    if (prefix === undefined) {
      const p = under('4.0.conv1.weight');
      if (p !== undefined && is4d(`${p}0.weight`) && tensors.has(`${p}1.running_var`)) {
        prefix = p;
        naming = 'sequential';
      }
    }
    if (prefix === undefined || !is4d(key) || found.some((c) => c.prefix === prefix)) continue;
    const named = new Map<string, TorchTensor>();
    const ignored: string[] = [];
    const unsupported: string[] = [];
    for (const [full, tensor] of tensors) {
      if (!full.startsWith(prefix)) continue;
      const local = rename(naming, full.slice(prefix.length));
      if (TORCHVISION_NAME.test(local)) named.set(local, tensor);
      else if (RESNET_BODY.test(local)) unsupported.push(local);
      else ignored.push(full.slice(prefix.length));
    }
    found.push({ name: prefix.replace(/\.$/, ''), prefix, naming, tensors: named, ignored, unsupported });
  }
  // Also left out: what sits beside the backbone in the same container (a projection head, a queue).
  for (const candidate of found) {
    const parent = candidate.prefix.replace(/[^.]*\.$/, '');
    for (const full of tensors.keys()) {
      if (full.startsWith(parent) && !found.some((c) => full.startsWith(c.prefix))) {
        candidate.ignored.push(full.slice(parent.length));
      }
    }
  }
  return found;
}

/** The candidate `key` names: its full name, or a unique `.`-suffix of it (`encoder_q`, `teacher.backbone`). */
export function pickBackbone(candidates: BackboneCandidate[], file: string, key?: string): BackboneCandidate {
  const list = () => candidates.map((c) => `"${displayName(c)}" (${c.tensors.size} tensors)`).join(', ');
  if (candidates.length === 0) {
    throw new InputError(
      file,
      'no ResNet backbone found: looked for torchvision/timm names (conv1.weight, layer1.0.conv1.weight, ...) ' +
        'under any prefix and nested key',
    );
  }
  let picked: BackboneCandidate | undefined;
  if (key === undefined) {
    if (candidates.length > 1) {
      throw new InputError(file, `holds ${candidates.length} backbones: ${list()}; pick one with --key <name>`);
    }
    picked = candidates[0];
  } else {
    const wanted = key.replace(/\.$/, '');
    const exact = candidates.filter((c) => c.name === wanted || (wanted === '' && c.name === ''));
    const suffix = candidates.filter((c) => c.name.endsWith(`.${wanted}`));
    const matches = exact.length > 0 ? exact : suffix;
    if (matches.length !== 1) {
      throw new InputError(
        file,
        `--key "${key}" ${matches.length === 0 ? 'matches no backbone' : 'matches several backbones'}; found: ${list()}`,
      );
    }
    picked = matches[0];
  }
  if (picked.unsupported.length > 0) {
    throw new InputError(
      file,
      `backbone "${displayName(picked)}" has layers a torchvision ResNet does not (${picked.unsupported.slice(0, 4).join(', ')}` +
        `${picked.unsupported.length > 4 ? ', ...' : ''}): deep stems, SE blocks or average-pool shortcuts ` +
        "(timm's resnet*d/c/s, seresnet) are not supported",
    );
  }
  return picked;
}
