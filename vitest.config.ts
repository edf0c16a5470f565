import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Native TensorFlow is loaded once per process: run files in forked processes,
    // two at a time on a 2-core machine.
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 120_000,
    hookTimeout: 120_000,
    env: { TF_CPP_MIN_LOG_LEVEL: '2' },
    // One temporary folder per run (TMPDIR), removed at the end.
    globalSetup: ['test/support/temp-root.ts'],
    // The JSON report is what .ci/run counts.
    reporters: ['default', 'json'],
    outputFile: { json: '.vitest-report.json' },
  },
});
