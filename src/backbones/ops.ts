/**
 * Functional layers for the ResNet backbones, written to match torchvision
 * numerically and to train fast on native TensorFlow.
 *
 * - Convolutions pad symmetrically like PyTorch (`same` only where it is
 *   symmetric: stride 1 and an odd kernel; otherwise explicit zero padding and `valid`).
 * - BatchNorm in training calls TensorFlow's fused kernels directly
 *   (`FusedBatchNormV3` forward, `FusedBatchNormGradV3` backward) through the
 *   tfjs-node binding: one op each way instead of ~15 elementwise ops, and the
 *   kernel updates the running statistics exactly like torch (momentum 0.1,
 *   running_var from the unbiased batch variance). On other backends a
 *   composite fallback computes the same thing.
 * - ReLU's gradient uses TensorFlow's `ReluGrad` (one op instead of three).
 */
import * as tf from '@tensorflow/tfjs';

/** torchvision's BatchNorm2d defaults. */
export const BN_EPSILON = 1e-5;
export const BN_MOMENTUM = 0.1;

interface TfeAttribute {
  name: string;
  type: number;
  value: unknown;
}

/** The parts of tfjs-node's NodeJSKernelBackend used here (it has no exported type we can import without loading it). */
interface NativeBackend {
  binding: {
    TF_ATTR_TYPE: number;
    TF_ATTR_FLOAT: number;
    TF_ATTR_STRING: number;
    TF_ATTR_BOOL: number;
    TF_FLOAT: number;
  };
  executeSingleOutput(name: string, attributes: TfeAttribute[], inputs: tf.Tensor[]): tf.Tensor;
  executeMultipleOutputs(name: string, attributes: TfeAttribute[], inputs: tf.Tensor[], count: number): tf.Tensor[];
}

/** The native TensorFlow backend when it is the active one, else undefined. */
export function nativeBackend(): NativeBackend | undefined {
  if (tf.getBackend() !== 'tensorflow') return undefined;
  const backend = tf.backend() as unknown as Partial<NativeBackend>;
  return typeof backend.executeMultipleOutputs === 'function' ? (backend as NativeBackend) : undefined;
}

/** Batch-norm parameters of one layer (torchvision's `bnX.weight/bias/running_mean/running_var`). */
export interface BatchNormParameters {
  gamma: tf.Variable; // [C]
  beta: tf.Variable; // [C]
  runningMean: tf.Variable; // [C]
  runningVar: tf.Variable; // [C]
}

function fusedAttributes(backend: NativeBackend, training: boolean, exponentialAverageFactor?: number): TfeAttribute[] {
  const b = backend.binding;
  const attributes: TfeAttribute[] = [
    { name: 'T', type: b.TF_ATTR_TYPE, value: b.TF_FLOAT },
    { name: 'U', type: b.TF_ATTR_TYPE, value: b.TF_FLOAT },
    { name: 'epsilon', type: b.TF_ATTR_FLOAT, value: BN_EPSILON },
    { name: 'data_format', type: b.TF_ATTR_STRING, value: 'NHWC' },
    { name: 'is_training', type: b.TF_ATTR_BOOL, value: training },
  ];
  if (exponentialAverageFactor !== undefined) {
    attributes.push({ name: 'exponential_avg_factor', type: b.TF_ATTR_FLOAT, value: exponentialAverageFactor });
  }
  return attributes;
}

/**
 * Training-mode batch norm on native TensorFlow: normalizes with the batch
 * statistics, updates the running statistics in place, and records a gradient
 * that calls FusedBatchNormGradV3.
 */
function nativeBatchNormTrain(backend: NativeBackend, x: tf.Tensor4D, p: BatchNormParameters): tf.Tensor4D {
  const forward = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [input, gamma, beta, save] = args as [tf.Tensor, tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    // Outputs: y, updated running mean, updated running var (unbiased batch var), batch mean, batch var (biased), reserve.
    const [y, newMean, newVar, savedMean, savedVar, reserve] = backend.executeMultipleOutputs(
      'FusedBatchNormV3',
      fusedAttributes(backend, true, BN_MOMENTUM),
      [input, gamma, beta, p.runningMean, p.runningVar],
      6,
    );
    p.runningMean.assign(newMean);
    p.runningVar.assign(newVar);
    save([input, gamma, savedMean, savedVar, reserve]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [dx, dGamma, dBeta] = backend.executeMultipleOutputs(
          'FusedBatchNormGradV3',
          fusedAttributes(backend, true),
          [dy, ...saved],
          5,
        );
        return [dx, dGamma, dBeta];
      },
    };
  });
  return forward(x, p.gamma, p.beta) as tf.Tensor4D;
}

/** The same computation from generic ops (pure-JS and other backends). */
function compositeBatchNormTrain(x: tf.Tensor4D, p: BatchNormParameters): tf.Tensor4D {
  const { mean, variance } = tf.moments(x, [0, 1, 2]); // [C], biased
  const count = x.shape[0] * x.shape[1] * x.shape[2];
  const unbiased = tf.mul(variance, count / (count - 1));
  p.runningMean.assign(tf.add(tf.mul(p.runningMean, 1 - BN_MOMENTUM), tf.mul(mean, BN_MOMENTUM)));
  p.runningVar.assign(tf.add(tf.mul(p.runningVar, 1 - BN_MOMENTUM), tf.mul(unbiased, BN_MOMENTUM)));
  return tf.batchNorm4d(
    x,
    mean as tf.Tensor1D,
    variance as tf.Tensor1D,
    p.beta as tf.Tensor1D,
    p.gamma as tf.Tensor1D,
    BN_EPSILON,
  );
}

/**
 * BatchNorm2d over NHWC: batch statistics and a running-statistics update in
 * training, running statistics in eval. Call inside tf.tidy.
 */
export function batchNorm(x: tf.Tensor4D, p: BatchNormParameters, training: boolean): tf.Tensor4D {
  if (!training) {
    const { runningMean, runningVar, beta, gamma } = p;
    return tf.batchNorm4d(
      x,
      runningMean as tf.Tensor1D,
      runningVar as tf.Tensor1D,
      beta as tf.Tensor1D,
      gamma as tf.Tensor1D,
      BN_EPSILON,
    );
  }
  const count = x.shape[0] * x.shape[1] * x.shape[2];
  if (count < 2) {
    throw new Error(
      `BatchNorm in training needs more than 1 value per channel but got input [${x.shape.join(', ')}]; ` +
        'use a batch of at least 2 or eval mode',
    );
  }
  const backend = nativeBackend();
  return backend ? nativeBatchNormTrain(backend, x, p) : compositeBatchNormTrain(x, p);
}

/** ReLU whose gradient is TensorFlow's single ReluGrad op on the native backend. */
export function relu<T extends tf.Tensor>(x: T): T {
  const backend = nativeBackend();
  if (!backend) return tf.relu(x);
  const forward = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [input, save] = args as [tf.Tensor, tf.GradSaveFunc];
    const y = tf.relu(input);
    save([y]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        backend.executeSingleOutput(
          'ReluGrad',
          [{ name: 'T', type: backend.binding.TF_ATTR_TYPE, value: backend.binding.TF_FLOAT }],
          [dy, saved[0]],
        ),
    };
  });
  return forward(x) as T;
}

/** Zero padding of `padding` px on every side of H and W of x [B, H, W, C] (PyTorch's symmetric padding). */
function padSpatial(x: tf.Tensor4D, padding: number): tf.Tensor4D {
  return tf.pad(x, [
    [0, 0],
    [padding, padding],
    [padding, padding],
    [0, 0],
  ]);
}
/**
 * PyTorch-style Conv2d without bias: `padding` zeros on each side (symmetric).
 * x [B, H, W, Cin], kernel [kh, kw, Cin, Cout] -> [B, H', W', Cout].
 */
export function conv2d(x: tf.Tensor4D, kernel: tf.Tensor4D, stride: number, padding: number): tf.Tensor4D {
  const kernelSize = kernel.shape[0];
  if (padding === 0) return tf.conv2d(x, kernel, stride, 'valid');
  // TensorFlow's `same` is symmetric for stride 1 with an odd kernel and padding (k - 1) / 2.
  if (stride === 1 && kernelSize % 2 === 1 && padding === (kernelSize - 1) / 2) {
    return tf.conv2d(x, kernel, 1, 'same');
  }
  const padded = padSpatial(x, padding);
  return tf.conv2d(padded, kernel, stride, 'valid');
}

/**
 * PyTorch's MaxPool2d(3, stride 2, padding 1) on a non-negative input (it follows
 * a ReLU): zero padding then equals PyTorch's -inf padding, since every window
 * holds at least one real value >= 0.
 */
export function maxPoolAfterRelu(x: tf.Tensor4D, size: number, stride: number, padding: number): tf.Tensor4D {
  const padded = padSpatial(x, padding);
  return tf.maxPool(padded, size, stride, 'valid');
}
