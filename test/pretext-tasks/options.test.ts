/** Option validation (exact messages), the views each task asks for, and the defaults/docs contract. */
import { describe, expect, it } from 'vitest';
import { contrastiveTask } from '../../pretext-tasks/contrastive.js';
import { jigsawTask } from '../../pretext-tasks/jigsaw.js';
import { BUILT_IN_TASKS } from '../../pretext-tasks/registry.js';
import { rotationTask } from '../../pretext-tasks/rotation.js';
import type { InputSpec } from '../../pretext-tasks/types.js';
import { UsageError } from '../../src/util/errors.js';

const GRAY_28: InputSpec = { size: 28, channels: 1, mean: [0.286], std: [0.353] };
const RGB_96: InputSpec = { size: 96, channels: 3, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };

describe('task options', () => {
  it('every built-in task documents every option and validates its own defaults', () => {
    for (const task of BUILT_IN_TASKS) {
      expect(Object.keys(task.optionDocs).sort()).toEqual(Object.keys(task.defaults).sort());
      expect(task.validate(undefined)).toEqual(task.defaults);
      expect(task.validate({})).toEqual(task.defaults);
      expect(task.paper.length).toBeGreaterThan(40);
    }
  });

  it('merges user options over the defaults', () => {
    expect(rotationTask.validate({ mode: 'random-one' })).toEqual({ ...rotationTask.defaults, mode: 'random-one' });
    expect(contrastiveTask.validate({ temperature: 0.1, hiddenDim: 64 }).hiddenDim).toBe(64);
  });

  it('rejects bad values with "Expected X for task.options.<key> but received Z"', () => {
    const cases: Array<[() => unknown, string]> = [
      [
        () => rotationTask.validate({ mode: 'some' }),
        'Expected one of "all-four", "random-one" for task.options.mode but received "some" (string)',
      ],
      [
        () => rotationTask.validate({ hiddenDim: 2.5 }),
        'Expected an integer between 1 and 65536 for task.options.hiddenDim but received 2.5 (number)',
      ],
      [
        () => rotationTask.validate({ cropScale: [0.9, 0.2] }),
        'Expected [low, high] with 0.05 <= low <= high <= 1 for task.options.cropScale but received [0.9,0.2] (array)',
      ],
      [
        () => rotationTask.validate({ horizontalFlip: 'yes' }),
        'Expected true or false for task.options.horizontalFlip but received "yes" (string)',
      ],
      [
        () => contrastiveTask.validate({ temperature: 0 }),
        'Expected a number > 0 and <= 10 for task.options.temperature but received 0 (number)',
      ],
      [
        () => contrastiveTask.validate({ temperature: '0.5' }),
        'Expected a number > 0 and <= 10 for task.options.temperature but received "0.5" (string)',
      ],
      [
        () => contrastiveTask.validate({ hiddenDim: 'wide' }),
        'Expected an integer >= 1 or "featureDim" for task.options.hiddenDim but received "wide" (string)',
      ],
      [
        () => contrastiveTask.validate({ blur: true }),
        'Expected one of "auto", "on", "off" for task.options.blur but received true (boolean)',
      ],
      [() => jigsawTask.validate({ grid: 4 }), 'Expected one of 2, 3 for task.options.grid but received 4 (number)'],
      [
        () => jigsawTask.validate({ grid: 2, permutationCount: 100 }),
        'Expected an integer between 2 and 24 for task.options.permutationCount but received 100 (number)',
      ],
      [
        () => jigsawTask.validate({ permutationSeed: -1 }),
        'Expected an integer >= 0 for task.options.permutationSeed but received -1 (number)',
      ],
      [
        () => jigsawTask.views(jigsawTask.validate({ tileSize: 12 }), GRAY_28),
        'Expected at most 9 px (28 px input / grid 3) for task.options.tileSize but received 12 (number)',
      ],
      [() => rotationTask.validate([1, 2]), 'Expected an object for task.options but received [1,2] (array)'],
      [
        () => contrastiveTask.validate({ temprature: 0.1 }),
        'Unknown key task.options.temprature (received 0.1 (number)); valid keys: temperature, projectionDim, hiddenDim, cropScale, colorJitterStrength, blur',
      ],
    ];
    for (const [run, message] of cases) {
      let error: unknown;
      try {
        run();
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(UsageError);
      expect((error as Error).message).toBe(message);
    }
  });
});

describe('task views', () => {
  it('rotation: one mild view ending in normalize', () => {
    const [view, ...rest] = rotationTask.views(rotationTask.defaults, GRAY_28);
    expect(rest).toHaveLength(0);
    expect(view.map((s) => s.op)).toEqual(['randomResizedCrop', 'horizontalFlip', 'normalize']);
    expect(view[view.length - 1]).toEqual({ op: 'normalize', mean: [0.286], std: [0.353] });
  });

  it('contrastive: two SimCLR views, no blur or colour ops at 28 px grayscale', () => {
    const views = contrastiveTask.views(contrastiveTask.defaults, GRAY_28);
    expect(views).toHaveLength(2);
    expect(views[0].map((s) => s.op)).toEqual(['randomResizedCrop', 'horizontalFlip', 'colorJitter', 'normalize']);
    expect(views[0][2]).toEqual({ op: 'colorJitter', p: 0.8, brightness: 0.4, contrast: 0.4 });
    expect(views[0][0]).toMatchObject({ size: 28, scale: [0.08, 1] });
  });

  it('contrastive: full recipe with grayscale and blur at 96 px RGB', () => {
    const [view] = contrastiveTask.views(contrastiveTask.validate({ colorJitterStrength: 1 }), RGB_96);
    expect(view.map((s) => s.op)).toEqual([
      'randomResizedCrop',
      'horizontalFlip',
      'colorJitter',
      'randomGrayscale',
      'gaussianBlur',
      'normalize',
    ]);
    expect(view[2]).toEqual({ op: 'colorJitter', p: 0.8, brightness: 0.8, contrast: 0.8, saturation: 0.8, hue: 0.2 });
    expect(view[3]).toEqual({ op: 'randomGrayscale', p: 0.2 });
    expect(view[4]).toEqual({ op: 'gaussianBlur', p: 0.5, sigma: [0.1, 2], kernelSize: 11 });
    const [noBlur] = contrastiveTask.views(contrastiveTask.validate({ blur: 'off' }), RGB_96);
    expect(noBlur.map((s) => s.op)).not.toContain('gaussianBlur');
  });

  it('jigsaw: crop, then tiles of 64/75 of a cell taken at a random offset inside it', () => {
    const [view] = jigsawTask.views(jigsawTask.defaults, GRAY_28);
    expect(view[1]).toEqual({ op: 'jigsaw', grid: 3, tileSize: 8, gap: 0, jitter: 1 });
    const [big] = jigsawTask.views(jigsawTask.validate({ grid: 3 }), { ...RGB_96, size: 225 });
    expect(big[1]).toEqual({ op: 'jigsaw', grid: 3, tileSize: 64, gap: 0, jitter: 11 });
  });
});
