/**
 * The registry of pretext tasks, filled by explicit registration. The built-in
 * tasks are listed here; importing a task module registers nothing. A user adds
 * a task by writing one module that exports a `PretextTask` and calling
 * `registerTask(myTask)` before the recipe is resolved.
 */
import { UsageError } from '../src/util/errors.js';
import { barlowTwinsTask } from './barlow-twins.js';
import { byolTask } from './byol.js';
import { contrastiveTask } from './contrastive.js';
import { dinoTask } from './dino.js';
import { jigsawTask } from './jigsaw.js';
import { mocoTask } from './moco.js';
import { rotationTask } from './rotation.js';
import { simsiamTask } from './simsiam.js';
import type { PretextTask } from './types.js';
import { vicregTask } from './vicreg.js';

/** Any task, whatever its options and heads. */
// biome-ignore lint/suspicious/noExplicitAny: the registry holds tasks of every option and head type
export type AnyPretextTask = PretextTask<any, any>;

/** The built-in tasks, in the order they are listed. */
export const BUILT_IN_TASKS: readonly AnyPretextTask[] = [
  rotationTask,
  contrastiveTask,
  jigsawTask,
  byolTask,
  simsiamTask,
  barlowTwinsTask,
  vicregTask,
  mocoTask,
  dinoTask,
];

const tasks = new Map<string, AnyPretextTask>(BUILT_IN_TASKS.map((task) => [task.id, task]));

const ID_PATTERN = /^[a-z][a-z0-9-]*$/;

/**
 * Adds a task under `task.id`. Throws if the id is taken (pass `replace: true`
 * to swap an existing one, e.g. in tests) or is not kebab-case.
 */
export function registerTask(task: AnyPretextTask, options: { replace?: boolean } = {}): void {
  if (!task || typeof task !== 'object' || typeof task.id !== 'string' || !ID_PATTERN.test(task.id)) {
    throw new UsageError(
      `A pretext task needs a kebab-case string id (e.g. "my-task") but received ${JSON.stringify(task?.id)}`,
    );
  }
  for (const member of ['validate', 'views', 'createHeads', 'headModules', 'step'] as const) {
    if (typeof task[member] !== 'function') {
      throw new UsageError(`Pretext task "${task.id}" must implement ${member}() (see pretext-tasks/types.ts)`);
    }
  }
  if (tasks.has(task.id) && !options.replace) {
    throw new UsageError(
      `A pretext task with id "${task.id}" is already registered; pass { replace: true } to replace it`,
    );
  }
  tasks.set(task.id, task);
}

/** Removes a registered task (built-ins included); returns whether it was there. */
export function unregisterTask(id: string): boolean {
  return tasks.delete(id);
}

/** The task registered as `id`; an unknown id is a UsageError listing the valid ids. */
export function getTask(id: string): AnyPretextTask {
  const task = tasks.get(id);
  if (!task) {
    throw new UsageError(`Unknown pretext task ${JSON.stringify(id)}; valid ids: ${listTasks().join(', ')}`);
  }
  return task;
}

/** Ids of all registered tasks, in registration order. */
export function listTasks(): string[] {
  return [...tasks.keys()];
}
