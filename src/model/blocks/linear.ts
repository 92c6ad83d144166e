// Matrix products over weights that may arrive in row chunks. A row chunk of W multiplies into its
// own columns of the output (matmul's ldOut), so the result is the same, bit for bit, however the
// rows are cut. Fused ops run only where the matrices are whole in memory at once.
import type { Pass } from "../architecture.ts";

/** out[N, rows] = x[N, cols] · Wᵀ. */
export function linear(p: Pass, out: number, x: number, name: string, N: number): void {
  for (const { row0, totalRows, weight } of p.weights.pieces(name)) p.backend.matmul(out + row0 * 4, x, weight, N, totalRows);
}

/** outs[i] = x · W_iᵀ for matrices sharing one input (q, k and v): one launch where the backend can. */
export function linearShared(p: Pass, outs: readonly number[], x: number, names: readonly string[], N: number): void {
  const ws = p.weights.together(names);
  if (ws !== null && p.backend.matmulShared?.(outs, x, ws, N)) return;
  names.forEach((name, i) => linear(p, outs[i]!, x, name, N));
}

/**
 * x[N, width] += a · Wᵀ (+ bias): fused into the matmul where the backend can, else through
 * `tmp` [N, width].
 */
export function residualLinear(p: Pass, x: number, a: number, name: string, bias: string | null, N: number, width: number, tmp: number): void {
  const be = p.backend;
  const ws = p.weights.together([name]);
  if (ws !== null && be.matmulAccumulate?.(x, a, ws[0]!, N)) {
    if (bias !== null) be.addBias(x, p.weights.get(bias), N);
    return;
  }
  linear(p, tmp, a, name, N);
  if (bias !== null) be.addBias(tmp, p.weights.get(bias), N);
  be.add(x, x, tmp, N * width);
}
