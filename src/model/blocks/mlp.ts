// The gated MLP (SwiGLU) of a decoder layer: x += down(silu(gate(xb)) * up(xb)) with
// xb = rmsnorm(x). Shared by the dense layers of every architecture and, over gathered rows, by
// each expert of a mixture-of-experts layer. Gate and up are two matrices, or one fused matrix
// whose first half is the gate (ChatGLM's dense_h_to_4h).
import type { Pass, TensorSpec } from "../architecture.ts";
import { FusedSplit } from "./fused.ts";
import { linear, residualLinear } from "./linear.ts";

/** Checkpoint names of one gated MLP's three matrices (biases: the same names with .bias). */
export interface MlpNames {
  readonly gate: string;
  readonly up: string;
  readonly down: string;
}

/** The dense MLP of layer `prefix` (model.layers.N.mlp.{gate,up,down}_proj). */
export function denseMlpNames(prefix: string): MlpNames {
  return { gate: `${prefix}.mlp.gate_proj`, up: `${prefix}.mlp.up_proj`, down: `${prefix}.mlp.down_proj` };
}

/** The three matrices (and biases) of a gated MLP of `inter` intermediate units, in use order. */
export function mlpTensors(n: MlpNames, hidden: number, inter: number, bias: boolean, expert?: number): TensorSpec[] {
  const m = (name: string, shape: number[]): TensorSpec => (expert === undefined ? { name, shape, role: "matrix" } : { name, shape, role: "matrix", expert });
  const t: TensorSpec[] = [m(`${n.gate}.weight`, [inter, hidden]), m(`${n.up}.weight`, [inter, hidden])];
  if (bias) t.push({ name: `${n.gate}.bias`, shape: [inter], role: "small" }, { name: `${n.up}.bias`, shape: [inter], role: "small" });
  t.push(m(`${n.down}.weight`, [hidden, inter]));
  if (bias) t.push({ name: `${n.down}.bias`, shape: [hidden], role: "small" });
  return t;
}

/**
 * h[N, inter] = silu(xb·Wgᵀ) * (xb·Wuᵀ), into `gate` (with `up` as the second buffer): one launch
 * where the backend fuses it and both matrices are whole in memory.
 */
export function swigluProjection(p: Pass, gate: number, up: number, xb: number, n: MlpNames, N: number, inter: number, bias: boolean): void {
  const be = p.backend;
  const g = `${n.gate}.weight`;
  const u = `${n.up}.weight`;
  const ws = bias ? null : p.weights.together([g, u]);
  // Biases go in before silu, so a biased MLP takes the plain ops.
  if (ws !== null && be.swigluMatmul?.(gate, xb, ws[0]!, ws[1]!, N)) return;
  linear(p, gate, xb, g, N);
  linear(p, up, xb, u, N);
  if (bias) {
    be.addBias(gate, p.weights.get(`${n.gate}.bias`), N);
    be.addBias(up, p.weights.get(`${n.up}.bias`), N);
  }
  be.swiglu(gate, gate, up, N * inter);
}

/** x[N, hidden] += mlp(xb) where xb already holds the normed input; `out` is scratch [N, hidden]. */
export function mlpInto(p: Pass, x: number, xb: number, n: MlpNames, N: number, hidden: number, inter: number, bias: boolean, out: number): void {
  const s = p.buf;
  swigluProjection(p, s.gate!, s.up!, xb, n, N, inter, bias);
  residualLinear(p, x, s.gate!, `${n.down}.weight`, bias ? `${n.down}.bias` : null, N, hidden, out);
}

/** x += mlp(rmsnorm(x)) for the dense MLP of layer `prefix` over every row of the pass. */
export function denseMlpBlock(p: Pass, prefix: string, hidden: number, inter: number, eps: number, bias: boolean): void {
  gatedMlpBlock(p, `${prefix}.post_attention_layernorm.weight`, denseMlpNames(prefix), hidden, inter, eps, bias);
}

/** x += mlp(rmsnorm(x)) over every row of the pass, for an MLP of any names (norm: its weight). */
export function gatedMlpBlock(p: Pass, norm: string, n: MlpNames, hidden: number, inter: number, eps: number, bias: boolean): void {
  const s = p.buf;
  const N = p.batch.N;
  p.backend.rmsnorm(s.xb!, s.x!, p.weights.get(norm), N, eps);
  mlpInto(p, s.x!, s.xb!, n, N, hidden, inter, bias, s.out!);
}

/** A gated MLP whose gate and up are one matrix [2·inter, hidden], gate rows first (module names). */
export interface FusedMlpNames {
  readonly gateUp: string;
  readonly down: string;
}

export function fusedMlpTensors(n: FusedMlpNames, hidden: number, inter: number): TensorSpec[] {
  return [
    { name: `${n.gateUp}.weight`, shape: [2 * inter, hidden], role: "matrix" },
    { name: `${n.down}.weight`, shape: [hidden, inter], role: "matrix" },
  ];
}

/** Activation widths of the fused MLP: gate, up, and the fused product's scratch. */
export function fusedMlpActivations(inter: number): Record<string, number> {
  return { gate: inter, up: inter, gateUp: 2 * inter };
}

/**
 * x += down(silu(first half of xb·Wᵀ) * second half) with xb = rmsnorm(x) (ChatGLM's MLP): one
 * fused gate/up launch over the halves where the backend has it, else the fused product, gathered
 * into gate and up.
 */
export function fusedMlpBlock(p: Pass, norm: string, n: FusedMlpNames, split: FusedSplit, hidden: number, inter: number, eps: number): void {
  const { backend: be, buf: s } = p;
  const N = p.batch.N;
  be.rmsnorm(s.xb!, s.x!, p.weights.get(norm), N, eps);
  const weight = `${n.gateUp}.weight`;
  const views = be.swigluMatmul ? split.views(p, weight, null) : null;
  if (views === null || !be.swigluMatmul!(s.gate!, s.xb!, views.weights[0]!, views.weights[1]!, N)) {
    split.project(p, [s.gate!, s.up!], s.xb!, weight, null, s.gateUp!, N);
    be.swiglu(s.gate!, s.gate!, s.up!, N * inter);
  }
  residualLinear(p, s.x!, s.gate!, `${n.down}.weight`, null, N, hidden, s.out!);
}

/** The split of a fused gate|up matrix of `inter` rows each. */
export function gateUpSplit(inter: number): FusedSplit {
  return new FusedSplit("contiguous", [1, 1], inter);
}
