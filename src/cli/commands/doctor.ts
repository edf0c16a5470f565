import type { Command } from 'commander';
import { resolveBackendPreference } from '../../engine/backend.js';
import { formatDoctorReport, runDoctor } from '../../engine/doctor.js';
import { type GlobalOptions, numberArg, output, withGlobalOptions } from '../common.js';

export function registerDoctor(program: Command, setResult: (p: Promise<number>) => void): void {
  withGlobalOptions(
    program
      .command('doctor')
      .description('show the backend, TensorFlow version, threads, sharp/libvips, and a quick convolution speed check')
      .option('--seconds <n>', 'length of the speed check in seconds (0.1-60)', numberArg({ min: 0.1, max: 60 }), 3)
      .option('--no-speed', 'skip the speed check')
      .addHelpText(
        'after',
        '\nExamples:\n  $ selfsup doctor\n  $ selfsup doctor --json --seconds 1\n  $ SELFSUP_BACKEND=js selfsup doctor',
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
