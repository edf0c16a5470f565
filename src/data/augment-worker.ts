/** Worker-thread entry: runs runAugmentJob for the loader's pool. */
import { parentPort } from 'node:worker_threads';
import { type AugmentJob, runAugmentJob } from './augment-batch.js';

interface Request {
  id: number;
  job: AugmentJob;
}

parentPort?.on('message', (request: Request) => {
  try {
    const result = runAugmentJob(request.job);
    parentPort!.postMessage(
      { id: request.id, result },
      result.views.map((v) => v.buffer as ArrayBuffer),
    );
  } catch (e) {
    parentPort!.postMessage({ id: request.id, error: (e as Error).message });
  }
});
