import type { Command } from 'commander';
import { resolveBackendPreference } from '../../engine/backend.js';
import { formatDoctorReport, runDoctor } from '../../engine/doctor.js';
import { type GlobalOptions, numberArg, output, withGlobalOptions } from '../common.js';

export function registerDoctor(program: Command, setResult: (p: Promise<number>) => void): void {
  withGlobalOptions(
    program
      .command('doctor')
      .description(
        'show the backend, the native package and whether it is a CUDA build (CUDA/cuDNN versions), GPUs or why none, ' +
          'TensorFlow version, threads, whether the compiled training step (graph addon) is available and in which precision it would run, sharp/libvips, and a quick convolution speed check on the device in use',
      )
      .option('--seconds <n>', 'length of the speed check in seconds (0.1-60)', numberArg({ min: 0.1, max: 60 }), 3)
      .option('--no-speed', 'skip the speed check')
      .addHelpText(
        'after',
        '\nExamples:\n  $ selfsup doctor\n  $ selfsup doctor --json --seconds 1\n  $ selfsup doctor --backend gpu\n  $ SELFSUP_NATIVE_PACKAGE=@tensorflow/tfjs-node-gpu selfsup doctor',
      ),
  ).action((opts: GlobalOptions & { seconds: number; speed: boolean }) => {
    setResult(
      (async () => {
        const report = await runDoctor({
          backend: resolveBackendPreference(opts.backend),
          speedSeconds: opts.seconds,
          skipSpeed: !opts.speed,
        });
        output(opts, report, formatDoctorReport(report));
        return 0;
      })(),
    );
  });
}
