/**
 * Lets the event loop run its pending callbacks (signal handlers, timers, I/O
 * completions) before the caller continues.
 *
 * A training loop whose awaits all resolve at once (batches already decoded and
 * cached, a prefetch queue that is always ahead) never reaches the event loop:
 * promises resolve as microtasks, and Node runs a signal handler only when the
 * loop turns. Ctrl-C or SIGTERM would then wait until the epoch ends. One
 * `setImmediate` per step costs microseconds.
 */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
