/**
 * What the two-view methods (SimCLR, MoCo, BYOL, SimSiam, Barlow Twins, VICReg)
 * share: the augmentation options and two SimCLR views of each image, the
 * projection of both views through the backbone and projector, and the momentum
 * target of the methods that keep one.
 */
import * as tf from '@tensorflow/tfjs';
import type { Head } from '../src/backbones/types.js';
import type { PipelineSpec } from '../src/data/types.js';
import { DT_FLOAT, type GraphBuilder } from '../src/engine/graph-runtime.js';
import {
  type SimclrAugmentationOptions,
  simclrView,
  TWO_VIEW_AUGMENTATION_DEFAULTS,
  TWO_VIEW_AUGMENTATION_DOCS,
} from './augmentations.js';
import { checkTwoViewAugmentation, validatorFor } from './options.js';
import type {
  CompiledTaskStep,
  InputSpec,
  PretextTask,
  ProjectionHeads,
  ProjectionPredictionHeads,
  StepContext,
  TaskStateSpec,
} from './types.js';

/** Two independently augmented SimCLR views of every image. */
export function twoSimclrViews(options: SimclrAugmentationOptions, input: InputSpec): PipelineSpec[] {
  return [simclrView(input, options), simclrView(input, options)];
}

/** One view through the online backbone and projector. */
export interface ProjectedView {
  features: tf.Tensor2D; // [B, D]
  projection: tf.Tensor2D; // [B, K]
}

/** Both views of the step through the online backbone and projector (inside the step's tidy). */
export function projectBothViews<Heads extends ProjectionHeads>(
  ctx: StepContext<Heads>,
): [ProjectedView, ProjectedView] {
  const project = (view: tf.Tensor4D): ProjectedView => {
    const features = ctx.backbone.features(view, ctx.training); // [B, D]
    return { features, projection: ctx.heads.projection.apply(features, ctx.training) };
  };
  const [view1, view2] = ctx.views as tf.Tensor4D[]; // [B, H, W, C] each
  return [project(view1), project(view2)];
}

/**
 * How an eager two-view step runs the backbone: `one-batch` on the views concatenated
 * ([2B], BatchNorm statistics over both views: SimCLR), `per-view` once per view
 * (projectBothViews: each view its own BatchNorm statistics).
 */
export type TwoViewForward = 'one-batch' | 'per-view';

/** The two halves [B, ...] of x [2B, ...] along the batch: view 1's rows, then view 2's. */
export function viewHalvesGraph(g: GraphBuilder, x: string): [string, string] {
  const split = g.op('Split', [g.constInt([0], [], 'split_axis'), x], {
    T: { type: DT_FLOAT },
    num_split: { int: 2 },
  });
  return [g.output(split, 0), g.output(split, 1)];
}

/** The two views of a compiled two-view step as one batch [2B, H, W, C]: view 1's B images, then view 2's. */
export function bothViews(views: tf.Tensor[]): tf.Tensor4D {
  if (views.length < 2) throw new Error(`a two-view step needs 2 views, got ${views.length}`);
  return tf.concat([views[0], views[1]], 0) as tf.Tensor4D;
}

/**
 * A two-view method's compiled step (src/train/compiled-step.ts), matching its eager
 * step: the two views are fed as one batch [2B, H, W, C] (view 1's B images, then view
 * 2's) and go through the backbone as `forward` says; `graph` gets their features
 * [2B, D] in that order and returns the loss and metrics. No targets. The collapse
 * alarm measures view 1's features, the eager step's embeddings.
 */
export function compiledTwoViewStep<Options>(
  forward: TwoViewForward,
  graph: (
    g: GraphBuilder,
    features: string,
    head: (name: string, x: string) => string,
    options: Options,
  ) => { loss: string; metrics: Record<string, string> },
): CompiledTaskStep<Options> {
  return {
    problem: () => undefined,
    forwardPasses: () => (forward === 'per-view' ? 2 : 1),
    inputs: ({ views }) => ({ images: bothViews(views) }),
    graph: (g, features, _targets, head, options) => ({
      ...graph(g, features, head, options),
      embeddings: viewHalvesGraph(g, features)[0],
    }),
  };
}

/** The heads a one-projector method trains and checkpoints. */
export function projectionHeadModules(heads: ProjectionHeads): Record<string, Head> {
  return { projection: heads.projection };
}

/** The heads a projector-and-predictor method trains and checkpoints. */
export function projectionPredictionHeadModules(heads: ProjectionPredictionHeads): Record<string, Head> {
  return { projection: heads.projection, prediction: heads.prediction };
}

/** A momentum copy of the backbone and projector, m rising from `momentum` to `momentumEnd`. */
export function projectionTarget(options: { momentum: number; momentumEnd: number }): TaskStateSpec['target'] {
  return { heads: ['projection'], momentumStart: options.momentum, momentumEnd: options.momentumEnd };
}

/** The options a two-view method adds to the shared augmentation ones (it may override their defaults and docs). */
type OwnOptions<Options> = Omit<Options, keyof SimclrAugmentationOptions> & Partial<SimclrAugmentationOptions>;

/**
 * A two-view method as written by its file: its own options, their docs and
 * checks; `defineTwoViewTask` adds the shared augmentation options (defaults,
 * docs, checks), the two SimCLR views and, unless given, the one projector's
 * head modules.
 */
export interface TwoViewTaskSpec<Options extends SimclrAugmentationOptions, Heads extends ProjectionHeads>
  extends Omit<PretextTask<Options, Heads>, 'defaults' | 'optionDocs' | 'validate' | 'views' | 'headModules'> {
  defaults: OwnOptions<Options>;
  optionDocs: Record<Exclude<keyof Options, keyof SimclrAugmentationOptions> & string, string> &
    Partial<Record<keyof SimclrAugmentationOptions, string>>;
  /** Resolves and checks the method's own options from the merged ones. */
  check(merged: Record<string, unknown>): OwnOptions<Options>;
  headModules?(heads: Heads): Record<string, Head>;
}

/** Builds a two-view pretext task from its own parts and the shared ones (see TwoViewTaskSpec). */
export function defineTwoViewTask<Options extends SimclrAugmentationOptions, Heads extends ProjectionHeads>(
  spec: TwoViewTaskSpec<Options, Heads>,
): PretextTask<Options, Heads> {
  const { defaults: own, optionDocs: ownDocs, check, headModules, ...task } = spec;
  // The method's own keys first, then the shared ones; the method's values win.
  const defaults = Object.freeze({ ...own, ...TWO_VIEW_AUGMENTATION_DEFAULTS, ...own }) as unknown as Options;
  return {
    ...task,
    defaults,
    optionDocs: { ...ownDocs, ...TWO_VIEW_AUGMENTATION_DOCS, ...ownDocs } as PretextTask<Options>['optionDocs'],
    validate: validatorFor(
      defaults,
      (merged) => ({ ...check(merged), ...checkTwoViewAugmentation(merged) }) as Options,
    ),
    views: twoSimclrViews,
    headModules: headModules ?? projectionHeadModules,
  };
}
