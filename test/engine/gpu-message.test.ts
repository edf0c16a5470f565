/** `--backend gpu` without @tensorflow/tfjs-node-gpu: a one-line reason, not a require stack. */
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { EngineError, initEngine } from '../../src/engine/backend.js';

function gpuPackageInstalled(): boolean {
  try {
    createRequire(import.meta.url).resolve('@tensorflow/tfjs-node-gpu');
    return true;
  } catch {
    return false;
  }
}

describe('backend gpu without its package', () => {
  it.skipIf(gpuPackageInstalled())('fails with one line naming the package', () => {
    let error: unknown;
    try {
      initEngine({ backend: 'gpu', quiet: true });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(EngineError);
    const message = (error as Error).message;
    expect(message).toMatch(/^backend "gpu" was asked for but @tensorflow\/tfjs-node-gpu failed to load: /);
    expect(message).not.toContain('\n');
    expect(message).not.toContain('Require stack');
  });
});
