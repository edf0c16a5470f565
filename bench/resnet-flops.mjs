/**
 * Floating-point work of the torchvision ResNets the benchmarks train, from the
 * architecture (src/backbones/resnet.ts's RESNET_SPECS): shared by
 * backbone-train.mjs and compiled-train-step.mjs.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const { RESNET_SPECS, baseWidth } = await import(path.join(root, 'dist/src/backbones/index.js'));

/** Forward multiply-adds x 2 of one image (convs + the 10-way head), from the architecture (width multiplier `width`). */
export function forwardFlops({ arch, stem, size, width: widthMultiplier = 1 }, classes = 10) {
  const spec = RESNET_SPECS[arch];
  const expansion = spec.block === 'bottleneck' ? 4 : 1;
  const base = baseWidth(widthMultiplier);
  let flops = 0;
  const conv = (h, k, cin, cout, stride, pad) => {
    const out = Math.floor((h + 2 * pad - k) / stride) + 1;
    flops += 2 * out * out * k * k * cin * cout;
    return out;
  };
  let h = stem === 'imagenet' ? conv(size, 7, 3, base, 2, 3) : conv(size, 3, 3, base, 1, 1);
  if (stem === 'imagenet') h = Math.floor((h + 2 - 3) / 2) + 1;
  let width = base;
  spec.layers.forEach((count, stage) => {
    const planes = base * 2 ** stage;
    for (let i = 0; i < count; i++) {
      const stride = i === 0 && stage > 0 ? 2 : 1;
      const output = planes * expansion;
      let o;
      if (spec.block === 'basic') {
        o = conv(h, 3, width, planes, stride, 1);
        conv(o, 3, planes, planes, 1, 1);
      } else {
        conv(h, 1, width, planes, 1, 0);
        o = conv(h, 3, planes, planes, stride, 1);
        conv(o, 1, planes, output, 1, 0);
      }
      if (stride !== 1 || width !== output) conv(h, 1, width, output, stride, 0);
      h = o;
      width = output;
    }
  });
  return flops + 2 * width * classes;
}
