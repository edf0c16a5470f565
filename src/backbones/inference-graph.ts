/**
 * The evaluation-mode forward pass as one compiled TensorFlow graph: a ResNet
 * (BatchNorm with its running statistics) to pooled features [B, D], and
 * optionally a head of linear, BatchNorm and ReLU blocks to logits [B, K] and softmax
 * probabilities, built once from the current weights (held as graph constants,
 * so the graph optimiser can fold BatchNorm into the convolutions) and run per
 * batch in a session. With `precision: 'bfloat16'` oneDNN's auto mixed precision
 * runs convolutions and matrix products in bfloat16.
 *
 * {@link createForwardPass} picks the graph where it can run (the graph addon,
 * a ResNet, a compilable head) and the eager forward pass otherwise, with one
 * line saying which and why; both give the same numbers within float32 rounding.
 */
import * as tf from '@tensorflow/tfjs';
import { type CompileSetting, chooseGraphPath, type GraphPath, type PrecisionSetting } from '../engine/graph-path.js';
import { DT_FLOAT, GraphBuilder, GraphSession, graphRuntimeStatus, type HostTensor } from '../engine/graph-runtime.js';
import type { ResNetLayout } from './resnet.js';
import { type GraphWeights, headGraph, headGraphProblem, resnetGraph } from './resnet-graph.js';
import type { Backbone, Head, HeadBlock } from './types.js';

/** How evaluation and feature extraction run their forward pass. */
export interface InferenceSetting {
  /** The compiled graph where it can run (auto, the default), always (on) or never (off). */
  compile: CompileSetting;
  /** float32 (the default), bfloat16, or auto (bfloat16 when compiled on a CPU with AVX512-BF16 or AMX). */
  precision: PrecisionSetting;
  /** How the two settings are named in the path's line and errors (default `compile`, `precision`). */
  names?: { compile: string; precision: string };
}

/** Forward passes are compiled where they can be, in float32, unless asked otherwise. */
export const DEFAULT_INFERENCE: InferenceSetting = { compile: 'auto', precision: 'float32' };

/** What one forward pass returns: features [B * D], and with a head logits and probabilities [B * K]. */
export interface ForwardOutputs {
  features: Float32Array;
  logits?: Float32Array;
  probabilities?: Float32Array;
}

/** An evaluation-mode forward pass over batches of normalised images [B, H, W, C] (row-major). */
export interface ForwardPass {
  /** Which path runs and why (one line). */
  readonly path: GraphPath;
  run(images: Float32Array, shape: [number, number, number, number]): ForwardOutputs;
  dispose(): void;
}

interface BlockHead extends Head {
  name: string;
  blocks: readonly HeadBlock[];
}

function layoutOf(backbone: Backbone): ResNetLayout | undefined {
  return (backbone as Partial<{ layout: ResNetLayout }>).layout;
}

/** Why the forward pass of `backbone` (+ `head`) cannot run as a graph here, or undefined when it can. */
export function inferenceGraphProblem(backbone: Backbone, head?: Head): string | undefined {
  const status = graphRuntimeStatus();
  if (!status.available) return status.reason;
  if (!layoutOf(backbone)) return 'the backbone is not a ResNet';
  if (head) {
    const blocks = (head as Partial<BlockHead>).blocks;
    if (!blocks) return 'the head is not built from block specs';
    const problem = headGraphProblem([...blocks]);
    if (problem) return `the head: ${problem}`;
  }
  return undefined;
}

/** The graph forward pass: weights as constants, built once, run per batch. */
export class InferenceGraph implements ForwardPass {
  private readonly graph: GraphBuilder;
  private readonly session: GraphSession;
  private readonly images: string;
  private readonly fetches: string[];
  private disposed = false;

  constructor(
    readonly backbone: Backbone,
    readonly head: Head | undefined,
    readonly path: GraphPath,
    threads: { intraOp: number; interOp: number } = defaultThreads(),
  ) {
    const problem = inferenceGraphProblem(backbone, head);
    if (problem) throw new Error(`cannot compile the forward pass: ${problem}`);
    const g = new GraphBuilder();
    this.graph = g;
    try {
      const constants = (module: { variables(): Array<{ name: string; variable: tf.Variable }> }) => {
        const byName = new Map(module.variables().map((v) => [v.name, v.variable]));
        const made = new Map<string, string>();
        const read = (name: string) => {
          let out = made.get(name);
          if (!out) {
            const variable = byName.get(name);
            if (!variable) throw new Error(`the forward pass has no weight named ${name}`);
            out = g.constFloat(variable.dataSync() as Float32Array, variable.shape, name);
            made.set(name, out);
          }
          return out;
        };
        const weights: GraphWeights = { read };
        return weights;
      };
      this.images = g.placeholder('images', DT_FLOAT, [-1, -1, -1, backbone.config.inputChannels]);
      const forward = resnetGraph(g, layoutOf(backbone)!, this.images, constants(backbone), false);
      this.fetches = [forward.output];
      if (head) {
        const { name, blocks } = head as BlockHead;
        const logits = headGraph(g, [...blocks], `head.${name}`, forward.output, constants(head));
        this.fetches.push(logits, g.op('Softmax', [logits], { T: { type: DT_FLOAT } }));
      }
      this.session = new GraphSession(g, {
        intraOpThreads: threads.intraOp,
        interOpThreads: threads.interOp,
        bfloat16: path.precision === 'bfloat16',
      });
    } catch (error) {
      g.dispose();
      throw error;
    }
  }

  run(images: Float32Array, shape: [number, number, number, number]): ForwardOutputs {
    if (this.disposed) throw new Error('this forward pass was disposed');
    const feed: HostTensor = { dtype: DT_FLOAT, shape, data: images };
    const out = this.session.run({ [this.images]: feed }, this.fetches);
    const values = out.map((t) => t.data as Float32Array);
    return { features: values[0], logits: values[1], probabilities: values[2] };
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.session.close();
    this.graph.dispose();
  }
}

/** The eager forward pass (the reference): backbone.features and head.apply in evaluation mode. */
class EagerForward implements ForwardPass {
  constructor(
    private readonly backbone: Backbone,
    private readonly head: Head | undefined,
    readonly path: GraphPath,
  ) {}

  run(images: Float32Array, shape: [number, number, number, number]): ForwardOutputs {
    return tf.tidy(() => {
      const features = this.backbone.features(tf.tensor4d(images, shape), false); // [B, D]
      if (!this.head) return { features: features.dataSync() as Float32Array };
      const logits = this.head.apply(features, false); // [B, K]
      return {
        features: features.dataSync() as Float32Array,
        logits: logits.dataSync() as Float32Array,
        probabilities: tf.softmax(logits).dataSync() as Float32Array,
      };
    });
  }

  dispose(): void {}
}

function defaultThreads() {
  return {
    intraOp: Number(process.env.TF_NUM_INTRAOP_THREADS) || 0,
    interOp: Number(process.env.TF_NUM_INTEROP_THREADS) || 0,
  };
}

/** Which forward pass `setting` gives for `backbone` (+ `head`), without building it. */
export function chooseInferencePath(
  backbone: Backbone,
  head: Head | undefined,
  setting: InferenceSetting = DEFAULT_INFERENCE,
): GraphPath {
  const names = setting.names ?? { compile: 'compile', precision: 'precision' };
  return chooseGraphPath(
    setting.compile,
    setting.precision,
    setting.compile === 'off' ? undefined : inferenceGraphProblem(backbone, head),
    { work: 'forward pass', eager: 'eager forward pass', compileKey: names.compile, precisionKey: names.precision },
  );
}

/**
 * The evaluation-mode forward pass of `backbone` (+ `head`) as `setting` asks:
 * the compiled graph where it can run, else eager (`path.reason` says which and why).
 * The graph holds the weights as they are now: build a new one after they change.
 */
export function createForwardPass(
  backbone: Backbone,
  head?: Head,
  setting: InferenceSetting = DEFAULT_INFERENCE,
): ForwardPass {
  const path = chooseInferencePath(backbone, head, setting);
  return path.compiled ? new InferenceGraph(backbone, head, path) : new EagerForward(backbone, head, path);
}
