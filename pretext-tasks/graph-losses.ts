/**
 * Losses and metrics of losses.ts as TensorFlow graph operations, for tasks'
 * compiled steps (src/train/compiled-step.ts). Outputs are graph output names.
 */
import { DT_BOOL, DT_FLOAT, DT_INT32, type GraphBuilder } from '../src/engine/graph-runtime.js';

const FLOAT = { type: DT_FLOAT };

/**
 * Mean softmax cross-entropy of one-hot targets under logits, as
 * crossEntropyFromLogits: logits [N, K], targets [N, K] -> scalar.
 */
export function crossEntropyGraph(g: GraphBuilder, logits: string, targets: string): string {
  const perExample = g.op('SoftmaxCrossEntropyWithLogits', [logits, targets], { T: FLOAT }); // [N]
  return g.op('Mean', [perExample, g.constInt([0], [1], 'axes')], {
    T: FLOAT,
    Tidx: { type: DT_INT32 },
    keep_dims: { bool: false },
  });
}

/** Fraction of rows whose argmax is the target's argmax: logits, one-hot targets [N, K] -> scalar. */
export function accuracyGraph(g: GraphBuilder, logits: string, targets: string): string {
  const axis = g.constInt([1], [], 'argmax_axis');
  const argMax = (x: string) =>
    g.op('ArgMax', [x, axis], { T: FLOAT, Tidx: { type: DT_INT32 }, output_type: { type: DT_INT32 } });
  const equal = g.op('Equal', [argMax(logits), argMax(targets)], { T: { type: DT_INT32 } });
  const asFloat = g.op('Cast', [equal], { SrcT: { type: DT_BOOL }, DstT: FLOAT });
  return g.op('Mean', [asFloat, g.constInt([0], [1], 'axes')], {
    T: FLOAT,
    Tidx: { type: DT_INT32 },
    keep_dims: { bool: false },
  });
}

const INT = { type: DT_INT32 };

function reduce(g: GraphBuilder, op: 'Sum' | 'Mean', x: string, axes: number[], keepDims = false): string {
  return g.op(op, [x, g.constInt(axes, [axes.length], 'axes')], {
    T: FLOAT,
    Tidx: INT,
    keep_dims: { bool: keepDims },
  });
}

function binary(g: GraphBuilder, op: 'AddV2' | 'Sub' | 'Mul' | 'RealDiv' | 'Maximum', a: string, b: string): string {
  return g.op(op, [a, b], { T: FLOAT });
}

function unary(g: GraphBuilder, op: 'Square' | 'Sqrt' | 'Neg' | 'Relu' | 'StopGradient', x: string): string {
  return g.op(op, [x], { T: FLOAT });
}

function scalar(g: GraphBuilder, value: number): string {
  return g.constFloat([value], [], 'scalar');
}

/** a [N, K] x b [N, M] -> aᵀ b [K, M]. */
function transposedProduct(g: GraphBuilder, a: string, b: string): string {
  return g.op('MatMul', [a, b], { T: FLOAT, transpose_a: { bool: true }, transpose_b: { bool: false } });
}

/** The number of rows N of x [N, ...] as an int32 scalar (from its shape: no gradient flows through it). */
function rowCountInt(g: GraphBuilder, x: string): string {
  const shape = g.op('Shape', [x], { T: FLOAT, out_type: INT });
  return g.op('StridedSlice', [shape, g.constInt([0], [1]), g.constInt([1], [1]), g.constInt([1], [1])], {
    T: INT,
    Index: INT,
    shrink_axis_mask: { int: 1 },
  });
}

/** The number of rows N of x [N, ...] as a float32 scalar. */
function rowCount(g: GraphBuilder, x: string): string {
  return g.op('Cast', [rowCountInt(g, x)], { SrcT: INT, DstT: FLOAT });
}

/** The mean of a vector x [N] -> scalar (a metric such as the mean diagonal). */
export function vectorMeanGraph(g: GraphBuilder, x: string): string {
  return reduce(g, 'Mean', x, [0]);
}

/** Row-wise x / max(||x||_2, 1e-12), as heads.ts's l2Normalize: [N, D] -> [N, D]. */
export function l2NormalizeGraph(g: GraphBuilder, x: string): string {
  const norm = unary(g, 'Sqrt', reduce(g, 'Sum', unary(g, 'Square', x), [1], true)); // [N, 1]
  return binary(g, 'RealDiv', x, binary(g, 'Maximum', norm, scalar(g, 1e-12)));
}

/**
 * A float32 [N, N] matrix with 1 where column j = (row i + shift) mod N, else 0, for N the rows of
 * `like`: shift 0 is the identity, shift B (N = 2B) marks each row's positive in SimCLR's batch.
 * A constant of the step (no gradient).
 */
function shiftedIdentity(g: GraphBuilder, like: string, shift: 0 | 'half'): string {
  const n = rowCountInt(g, like);
  const rows = g.op('Range', [g.constInt([0], []), n, g.constInt([1], [])], { Tidx: INT }); // [N]
  const columns =
    shift === 0
      ? rows
      : g.op(
          'FloorMod',
          [g.op('AddV2', [rows, g.op('FloorDiv', [n, g.constInt([2], [])], { T: INT })], { T: INT }), n],
          { T: INT },
        );
  const expand = (t: string, axis: number) => g.op('ExpandDims', [t, g.constInt([axis], [])], { T: INT, Tdim: INT });
  const equal = g.op('Equal', [expand(columns, 1), expand(rows, 0)], { T: INT });
  return unary(g, 'StopGradient', g.op('Cast', [equal], { SrcT: { type: DT_BOOL }, DstT: FLOAT }));
}

/**
 * SimCLR's cosine-similarity logits, as losses.ts's contrastiveLogits: the 2B rows of
 * [z1; z2] L2-normalised, compared pairwise, divided by the temperature, each row's
 * similarity with itself pushed to -1e9. z1, z2 [B, K] -> [2B, 2B].
 */
export function contrastiveLogitsGraph(g: GraphBuilder, z1: string, z2: string, temperature: number): string {
  const z = l2NormalizeGraph(
    g,
    g.op('ConcatV2', [[z1, z2], g.constInt([0], [], 'axis')], { T: FLOAT, N: { int: 2 }, Tidx: INT }),
  ); // [2B, K]
  const product = g.op('MatMul', [z, z], { T: FLOAT, transpose_a: { bool: false }, transpose_b: { bool: true } });
  const similarity = binary(g, 'RealDiv', product, scalar(g, temperature)); // [2B, 2B]
  return binary(g, 'AddV2', similarity, binary(g, 'Mul', shiftedIdentity(g, z, 0), scalar(g, -1e9)));
}

/**
 * NT-Xent, SimCLR eq. (1), as losses.ts's ntXentLoss: the cross-entropy of each of the 2B
 * rows' softmax over the others against its positive (row i <-> i + B), averaged.
 * z1, z2 [B, K] -> { loss, accuracy } (accuracy: losses.ts's contrastiveAccuracy, the
 * fraction of rows whose most similar other row is its positive).
 */
export function ntXentGraph(
  g: GraphBuilder,
  z1: string,
  z2: string,
  temperature: number,
): { loss: string; accuracy: string } {
  const logits = contrastiveLogitsGraph(g, z1, z2, temperature); // [2B, 2B]
  const positives = shiftedIdentity(g, logits, 'half'); // [2B, 2B] one-hot
  // The argmax of sim / t is the argmax of sim (t > 0): contrastiveAccuracy's logits at t = 1 rank the same.
  return { loss: crossEntropyGraph(g, logits, positives), accuracy: accuracyGraph(g, logits, positives) };
}

/** Cosine similarity of matching rows, as losses.ts's rowCosine: a, b [N, D] -> [N]. */
export function rowCosineGraph(g: GraphBuilder, a: string, b: string): string {
  return reduce(g, 'Sum', binary(g, 'Mul', l2NormalizeGraph(g, a), l2NormalizeGraph(g, b)), [1]);
}

/** SimSiam's D(p, z) = -mean_n cos(p_n, z_n), as losses.ts's negativeCosineSimilarity: [N, D] each -> scalar. */
export function negativeCosineGraph(g: GraphBuilder, p: string, z: string): string {
  return unary(g, 'Neg', reduce(g, 'Mean', rowCosineGraph(g, p, z), [0]));
}

/**
 * SimSiam eq. (2), as losses.ts's simsiamLoss: D(p1, stopgrad(z2)) / 2 + D(p2, stopgrad(z1)) / 2,
 * the stop-gradient a StopGradient op. p1, p2, z1, z2 [N, D] -> scalar.
 */
export function simsiamLossGraph(g: GraphBuilder, p1: string, p2: string, z1: string, z2: string): string {
  const sum = binary(
    g,
    'AddV2',
    negativeCosineGraph(g, p1, unary(g, 'StopGradient', z2)),
    negativeCosineGraph(g, p2, unary(g, 'StopGradient', z1)),
  );
  return binary(g, 'Mul', sum, scalar(g, 0.5));
}

/** Column means [D] and biased variances [D] of x [N, D], as tf.moments(x, 0). */
function columnMoments(g: GraphBuilder, x: string): { mean: string; variance: string } {
  const mean = reduce(g, 'Mean', x, [0]); // [D]
  return { mean, variance: reduce(g, 'Mean', unary(g, 'Square', binary(g, 'Sub', x, mean)), [0]) };
}

/** (x - mean) / sqrt(biased var + eps) per column, as losses.ts's standardizeColumns: [N, D] -> [N, D]. */
function standardizeColumnsGraph(g: GraphBuilder, x: string, epsilon = 1e-5): string {
  const { mean, variance } = columnMoments(g, x);
  return binary(
    g,
    'RealDiv',
    binary(g, 'Sub', x, mean),
    unary(g, 'Sqrt', binary(g, 'AddV2', variance, scalar(g, epsilon))),
  );
}

/**
 * The diagonal of a square matrix m [D, D] -> [D], as losses.ts's diagonalOf: every
 * (D + 1)-th entry of the flattened matrix (a strided slice, which has a gradient).
 */
export function diagonalGraph(g: GraphBuilder, m: string): string {
  const [rows, columns] = g.shape(m) ?? [];
  if (!(rows > 0) || rows !== columns) throw new Error(`diagonalGraph needs a square matrix of known size, got ${m}`);
  const flat = g.op('Reshape', [m, g.constInt([rows * rows], [1])], { T: FLOAT, Tshape: INT });
  return g.op(
    'StridedSlice',
    [flat, g.constInt([0], [1]), g.constInt([rows * rows], [1]), g.constInt([rows + 1], [1])],
    { T: FLOAT, Index: INT },
  );
}

/**
 * Barlow Twins' cross-correlation matrix, as losses.ts's crossCorrelation: the
 * batch-standardised projections' C = z1ᵀ z2 / N. z1, z2 [N, D] -> [D, D].
 */
export function crossCorrelationGraph(g: GraphBuilder, z1: string, z2: string): string {
  const product = transposedProduct(g, standardizeColumnsGraph(g, z1), standardizeColumnsGraph(g, z2));
  return binary(g, 'RealDiv', product, rowCount(g, z1));
}

/**
 * Barlow Twins eq. (1) on c [D, D], as losses.ts's barlowTwinsObjective:
 * sum_i (1 - C_ii)² + lambda (sum C² - sum_i C_ii²) -> scalar.
 */
export function barlowTwinsObjectiveGraph(g: GraphBuilder, c: string, lambda: number): string {
  const diagonal = diagonalGraph(g, c); // [D]
  const onDiagonal = reduce(g, 'Sum', unary(g, 'Square', binary(g, 'Sub', diagonal, scalar(g, 1))), [0]);
  const offDiagonal = binary(
    g,
    'Sub',
    reduce(g, 'Sum', unary(g, 'Square', c), [0, 1]),
    reduce(g, 'Sum', unary(g, 'Square', diagonal), [0]),
  );
  return binary(g, 'AddV2', onDiagonal, binary(g, 'Mul', offDiagonal, scalar(g, lambda)));
}

/** VICReg's v(Z) = mean_j max(0, 1 - sqrt(unbiased Var(z_j) + eps)), as losses.ts's varianceTerm. */
function varianceTermGraph(g: GraphBuilder, z: string, epsilon: number): string {
  const n = rowCount(g, z);
  const { variance } = columnMoments(g, z);
  const unbiased = binary(g, 'Mul', variance, binary(g, 'RealDiv', n, binary(g, 'Sub', n, scalar(g, 1))));
  const std = unary(g, 'Sqrt', binary(g, 'AddV2', unbiased, scalar(g, epsilon)));
  return reduce(g, 'Mean', unary(g, 'Relu', binary(g, 'Sub', scalar(g, 1), std)), [0]);
}

/** VICReg's c(Z) = sum_{i != j} Cov(Z)_ij² / D, as losses.ts's covarianceTerm. */
function covarianceTermGraph(g: GraphBuilder, z: string): string {
  const n = rowCount(g, z);
  const centred = binary(g, 'Sub', z, reduce(g, 'Mean', z, [0]));
  const covariance = binary(g, 'RealDiv', transposedProduct(g, centred, centred), binary(g, 'Sub', n, scalar(g, 1)));
  const offDiagonal = binary(
    g,
    'Sub',
    reduce(g, 'Sum', unary(g, 'Square', covariance), [0, 1]),
    reduce(g, 'Sum', unary(g, 'Square', diagonalGraph(g, covariance)), [0]),
  );
  const [, dimension] = g.shape(z) ?? [];
  if (!(dimension > 0)) throw new Error(`covarianceTermGraph needs embeddings of known width, got ${z}`);
  return binary(g, 'RealDiv', offDiagonal, scalar(g, dimension));
}

/** The three VICReg terms as graph outputs (see losses.ts's VicregTerms). */
export interface VicregTermsGraph {
  invariance: string;
  variance: string;
  covariance: string;
}

/** VICReg's terms, as losses.ts's vicregTerms: z1, z2 [N, D] embeddings of the two views. */
export function vicregTermsGraph(g: GraphBuilder, z1: string, z2: string, epsilon = 1e-4): VicregTermsGraph {
  return {
    invariance: reduce(g, 'Mean', unary(g, 'Square', binary(g, 'Sub', z1, z2)), [0, 1]),
    variance: binary(
      g,
      'Mul',
      binary(g, 'AddV2', varianceTermGraph(g, z1, epsilon), varianceTermGraph(g, z2, epsilon)),
      scalar(g, 0.5),
    ),
    covariance: binary(g, 'AddV2', covarianceTermGraph(g, z1), covarianceTermGraph(g, z2)),
  };
}

/** VICReg eq. (6), as losses.ts's weightedVicreg: lambda s + mu v + nu c -> scalar. */
export function weightedVicregGraph(
  g: GraphBuilder,
  terms: VicregTermsGraph,
  weights: { invariance: number; variance: number; covariance: number },
): string {
  const parts = (['invariance', 'variance', 'covariance'] as const).map((key) =>
    binary(g, 'Mul', terms[key], scalar(g, weights[key])),
  );
  return g.op('AddN', [parts], { N: { int: 3 }, T: FLOAT });
}

/** BYOL's ||q̄ - z̄||² averaged over rows, as losses.ts's normalizedMse: q, z [N, D] -> scalar. */
export function normalizedMseGraph(g: GraphBuilder, q: string, z: string): string {
  const difference = binary(g, 'Sub', l2NormalizeGraph(g, q), l2NormalizeGraph(g, z));
  return reduce(g, 'Mean', reduce(g, 'Sum', unary(g, 'Square', difference), [1]), [0]);
}

/**
 * BYOL's symmetric loss, as losses.ts's byolLoss: normalizedMse(q1, sg(z2)) + normalizedMse(q2, sg(z1)),
 * the target projections behind StopGradient. q1, q2, z1, z2 [N, D] -> scalar.
 */
export function byolLossGraph(g: GraphBuilder, q1: string, q2: string, z1: string, z2: string): string {
  return binary(
    g,
    'AddV2',
    normalizedMseGraph(g, q1, unary(g, 'StopGradient', z2)),
    normalizedMseGraph(g, q2, unary(g, 'StopGradient', z1)),
  );
}

/**
 * MoCo's InfoNCE, as losses.ts's infoNceLogits with crossEntropyFromLogits and
 * accuracyFromLogits against the positive in column 0: logits [q̂·k̂, q̂ Qᵀ] / t.
 * q, k [N, D] (k from the momentum encoder: no gradient), queue [K, D] -> { loss, accuracy }.
 */
export function infoNceGraph(
  g: GraphBuilder,
  q: string,
  k: string,
  queue: string,
  temperature: number,
): { loss: string; accuracy: string } {
  const qn = l2NormalizeGraph(g, q); // [N, D]
  const positive = reduce(g, 'Sum', binary(g, 'Mul', qn, l2NormalizeGraph(g, unary(g, 'StopGradient', k))), [1], true);
  const negative = g.op('MatMul', [qn, queue], { T: FLOAT, transpose_a: { bool: false }, transpose_b: { bool: true } });
  const logits = binary(
    g,
    'RealDiv',
    g.op('ConcatV2', [[positive, negative], g.constInt([1], [], 'axis')], { T: FLOAT, N: { int: 2 }, Tidx: INT }),
    scalar(g, temperature),
  ); // [N, 1 + K]
  const columns = g.op(
    'StridedSlice',
    [
      g.op('Shape', [logits], { T: FLOAT, out_type: INT }),
      g.constInt([1], [1]),
      g.constInt([2], [1]),
      g.constInt([1], [1]),
    ],
    {
      T: INT,
      Index: INT,
      shrink_axis_mask: { int: 1 },
    },
  );
  const zeros = g.op(
    'Fill',
    [g.op('ExpandDims', [rowCountInt(g, q), g.constInt([0], [])], { T: INT, Tdim: INT }), g.constInt([0], [])],
    {
      T: INT,
      index_type: INT,
    },
  ); // [N] the positive's column
  const positives = unary(
    g,
    'StopGradient',
    g.op('OneHot', [zeros, columns, scalar(g, 1), scalar(g, 0)], { T: FLOAT, TI: INT, axis: { int: -1 } }),
  ); // [N, 1 + K]
  return { loss: crossEntropyGraph(g, logits, positives), accuracy: accuracyGraph(g, logits, positives) };
}

/**
 * MoCo's enqueue as a row update, the rows losses.ts's enqueue replaces: the L2-normalised
 * keys [N, D] go to rows (pointer + i) mod K of the queue (wrapping around), and the pointer
 * [1] (int32) moves N on. Returned as the rows [N] and their new values, so the compiled step
 * writes only those rows (ResourceScatterUpdate) and the other K - N rows keep their float32
 * values whatever the precision of the graph around them.
 */
export function enqueueGraph(
  g: GraphBuilder,
  keys: string,
  pointer: string,
  size: number,
): { rows: string; values: string; pointer: string } {
  const int = (value: number) => g.constInt([value], []);
  const intOp = (op: 'AddV2' | 'FloorMod', a: string, b: string) => g.op(op, [a, b], { T: INT });
  const n = rowCountInt(g, keys);
  const offsets = g.op('Range', [int(0), n, int(1)], { Tidx: INT }); // [N]
  return {
    rows: intOp('FloorMod', intOp('AddV2', offsets, pointer), int(size)),
    values: l2NormalizeGraph(g, keys),
    pointer: intOp('FloorMod', intOp('AddV2', pointer, n), int(size)),
  };
}

/** x [N, ...] in `parts` equal row blocks, in order (Split along the rows). */
export function rowBlocksGraph(g: GraphBuilder, x: string, parts: number): string[] {
  if (parts === 1) return [x];
  const split = g.op('Split', [g.constInt([0], [], 'split_axis'), x], { T: FLOAT, num_split: { int: parts } });
  return Array.from({ length: parts }, (_, i) => g.output(split, i));
}

/**
 * DINO's loss, as losses.ts's dinoLoss: the teacher views' outputs [B, K] centred by `center`
 * [1, K] and sharpened by the scalar `teacherTemperature` (a graph output) into targets (no
 * gradient), the student views' log-softmax at `studentTemperature`, the cross-entropy of
 * every pair of different view indices averaged over rows and pairs -> scalar.
 */
export function dinoLossGraph(
  g: GraphBuilder,
  teacher: string[],
  student: string[],
  center: string,
  teacherTemperature: string,
  studentTemperature: number,
): string {
  if (teacher.length < 1 || student.length < 2) {
    throw new RangeError(
      `dinoLoss needs >= 1 teacher and >= 2 student views, got ${teacher.length} and ${student.length}`,
    );
  }
  const targets = teacher.map((t) =>
    unary(
      g,
      'StopGradient',
      g.op('Softmax', [binary(g, 'RealDiv', binary(g, 'Sub', t, center), teacherTemperature)], { T: FLOAT }),
    ),
  );
  const logP = student.map((s) =>
    g.op('LogSoftmax', [binary(g, 'RealDiv', s, scalar(g, studentTemperature))], { T: FLOAT }),
  );
  const terms: string[] = [];
  targets.forEach((target, i) => {
    logP.forEach((l, j) => {
      if (i !== j)
        terms.push(unary(g, 'Neg', reduce(g, 'Mean', reduce(g, 'Sum', binary(g, 'Mul', target, l), [1]), [0])));
    });
  });
  const total = terms.length === 1 ? terms[0] : g.op('AddN', [terms], { T: FLOAT, N: { int: terms.length } });
  return binary(g, 'RealDiv', total, scalar(g, terms.length));
}

/** DINO's centre update, as losses.ts's dinoCenter: m c + (1 - m) mean of the teacher outputs' rows -> [1, K]. */
export function dinoCenterGraph(g: GraphBuilder, center: string, teacherOutputs: string, momentum: number): string {
  return binary(
    g,
    'AddV2',
    binary(g, 'Mul', center, scalar(g, momentum)),
    binary(g, 'Mul', reduce(g, 'Mean', teacherOutputs, [0], true), scalar(g, 1 - momentum)),
  );
}
