/**
 * LARS (optimizers.ts's Lars, as in SimCLR's implementation) as graph operations
 * for the compiled step: for an adapted parameter (not a bias or BatchNorm
 * parameter) the local rate is lr * eta * ||p|| / ||g|| with g = grad + wd * p
 * (1 x lr when either norm is 0); the others use lr. The step feeds the scaled
 * gradient rate * g to ResourceApplyMomentum at learning rate 1, which computes
 * the eager update exactly: v = momentum * v + rate * g; p -= nesterov ?
 * momentum * v + rate * g : v.
 */
import { DT_FLOAT, DT_INT32, type GraphBuilder } from '../engine/graph-runtime.js';

const FLOAT = { type: DT_FLOAT };

/** ||x||_2 over every entry of x, as tf.norm(x): a float32 scalar. */
function norm(g: GraphBuilder, x: string, rank: number): string {
  const axes = g.constInt([...Array(rank).keys()], [rank], 'norm_axes');
  const sum = g.op('Sum', [g.op('Square', [x], { T: FLOAT }), axes], {
    T: FLOAT,
    Tidx: { type: DT_INT32 },
    keep_dims: { bool: false },
  });
  return g.op('Sqrt', [sum], { T: FLOAT });
}

/**
 * The LARS-scaled gradient rate * g of one parameter: `weight` its value before the update,
 * `grad` its (clipped, weight-decayed when adapted) gradient g, `lr` its learning rate.
 */
export function larsScaledGradient(
  g: GraphBuilder,
  weight: string,
  grad: string,
  lr: string,
  options: { adapted: boolean; trustCoefficient: number; rank: number },
): string {
  if (!options.adapted) return g.op('Mul', [grad, lr], { T: FLOAT });
  const zero = g.constFloat([0], []);
  const paramNorm = norm(g, weight, options.rank);
  const gradNorm = norm(g, grad, options.rank);
  const bothPositive = g.op('LogicalAnd', [
    g.op('Greater', [paramNorm, zero], { T: FLOAT }),
    g.op('Greater', [gradNorm, zero], { T: FLOAT }),
  ]);
  const trust = g.op(
    'RealDiv',
    [g.op('Mul', [paramNorm, g.constFloat([options.trustCoefficient], [])], { T: FLOAT }), gradNorm],
    { T: FLOAT },
  );
  const ratio = g.op('SelectV2', [bothPositive, trust, g.constFloat([1], [])], { T: FLOAT });
  const rate = g.op('StopGradient', [g.op('Mul', [ratio, lr], { T: FLOAT })], { T: FLOAT });
  return g.op('Mul', [grad, rate], { T: FLOAT });
}
