// The sparse MLP of a mixture-of-experts layer (Mixtral's block_sparse_moe, Qwen-MoE's mlp,
// DeepSeek's DeepseekV3MoE): x += Σ_e w_e · expert_e(xb) over the top-k experts of each row, plus
// an optional shared expert, scaled by sigmoid(shared_expert_gate · xb) where it has a gate
// (Qwen-MoE) and added whole where it has none (DeepSeek), where xb = rmsnorm(x). The routing rule
// (softmax or sigmoid scores, a selection bias, expert groups, a scale) is the dims' `routing`. The router runs first and its
// choices come back to the host, so only the experts some row of the pass routes to are fetched
// (the union over the batch, each once, in ascending order); each expert runs over the rows routed
// to it, gathered into one block, and its weighted output is added back to those rows.
import type { RouteOptions, RouterScoring, Weight } from "../../backend/backend.ts";
import type { Pass, TensorSpec } from "../architecture.ts";
import { linear } from "./linear.ts";
import { mlpTensors, swigluProjection, type MlpNames } from "./mlp.ts";

export interface MoeDims {
  readonly hidden: number;
  readonly experts: number;
  readonly topK: number;
  readonly expertInter: number;
  /** Intermediate size of the shared expert; 0 = none. */
  readonly sharedInter: number;
  readonly normTopk: boolean;
  readonly rmsNormEps: number;
  /** Routing beyond top-k of the softmax (DeepSeek); absent: softmax, no groups, scale 1. */
  readonly routing?: MoeRouting;
}

/** DeepSeek's routing rules (Backend.moeRoute's options beyond the softmax top-k). */
export interface MoeRouting {
  readonly scoring: RouterScoring;
  /** routed_scaling_factor. */
  readonly scale: number;
  readonly groups: RouteOptions["groups"];
}

export interface MoeNames {
  /** post_attention_layernorm of the layer. */
  readonly norm: string;
  /** Router weight [experts, hidden]. */
  readonly router: string;
  readonly expert: (e: number) => MlpNames;
  readonly shared?: MlpNames;
  /** shared_expert_gate weight [1, hidden]; absent: the shared expert is added unscaled. */
  readonly sharedGate?: string;
  /** e_score_correction_bias [experts] (DeepSeek-V3), added to the scores for choosing only. */
  readonly selectionBias?: string;
}

/** The next MoE layer, whose routing this layer guesses to fetch its experts early. */
export interface NextMoe {
  readonly entryIndex: number;
  readonly names: MoeNames;
  readonly dims: MoeDims;
}

export function moeTensors(n: MoeNames, d: MoeDims): TensorSpec[] {
  // In the order the forward uses them: routed experts (ascending), then the shared expert.
  const t: TensorSpec[] = [
    { name: n.norm, shape: [d.hidden], role: "small" },
    { name: n.router, shape: [d.experts, d.hidden], role: "small" },
  ];
  if (n.selectionBias) t.push({ name: n.selectionBias, shape: [d.experts], role: "small" });
  for (let e = 0; e < d.experts; e++) t.push(...mlpTensors(n.expert(e), d.hidden, d.expertInter, false, e));
  if (n.shared) {
    if (n.sharedGate) t.push({ name: n.sharedGate, shape: [1, d.hidden], role: "small" });
    t.push(...mlpTensors(n.shared, d.hidden, d.sharedInter, false));
  }
  return t;
}

/** Activation widths of the block (floats or int32 per row). */
export function moeActivations(d: MoeDims): Record<string, number> {
  const inter = Math.max(d.expertInter, d.sharedInter);
  return { ex: d.hidden, eo: d.hidden, eg: inter, eu: inter, router: d.experts, routeIds: d.topK, routeWeights: d.topK, sharedGate: 1 };
}

function routeOptions(d: MoeDims, selectionBias: Weight | null): RouteOptions {
  const r = d.routing;
  return {
    experts: d.experts,
    topK: d.topK,
    scoring: r?.scoring ?? "softmax",
    normalize: d.normTopk,
    scale: r?.scale ?? 1,
    selectionBias,
    groups: r?.groups ?? null,
  };
}

/** Runs the router over xb on the device and brings its choices to the host: ids and weights [N, k]. */
function route(p: Pass, xb: number, router: Weight, bias: Weight | null, d: MoeDims, N: number): { ids: Int32Array; weights: Float32Array } {
  const { backend: be, buf: s } = p;
  be.matmul(s.router!, xb, router, N);
  be.moeRoute(s.routeIds!, s.routeWeights!, s.router!, N, routeOptions(d, bias));
  const ids = new Int32Array(N * d.topK);
  const weights = new Float32Array(N * d.topK);
  be.download(new Uint8Array(ids.buffer), s.routeIds!, ids.byteLength);
  be.download(weights, s.routeWeights!, weights.byteLength);
  return { ids, weights };
}

/** x += moe(rmsnorm(x)) for one MoE layer over every row of the pass. */
export function moeBlock(p: Pass, n: MoeNames, d: MoeDims, next: NextMoe | null): void {
  const { backend: be, buf: s, weights: w } = p;
  const N = p.batch.N;
  const H = d.hidden;
  be.rmsnorm(s.xb!, s.x!, w.get(n.norm), N, d.rmsNormEps);
  const routed = route(p, s.xb!, w.get(n.router), n.selectionBias ? w.get(n.selectionBias) : null, d, N);
  let sharedScale: Float32Array | null = null;
  if (n.sharedGate) {
    be.matmul(s.sharedGate!, s.xb!, w.get(n.sharedGate), N);
    const logits = new Float32Array(N);
    be.download(logits, s.sharedGate!, logits.byteLength);
    sharedScale = logits.map((g) => 1 / (1 + Math.exp(-g)));
  }

  // Guess the next MoE layer's experts from this layer's residual stream, so they are fetched
  // while this layer computes (mixtral-offloading's speculative loading): its norm and router on x.
  if (next !== null && w.guessesExperts(next.entryIndex)) {
    be.rmsnorm(s.ex!, s.x!, w.smallOf(next.entryIndex, next.names.norm), N, next.dims.rmsNormEps);
    const nextBias = next.names.selectionBias ? w.smallOf(next.entryIndex, next.names.selectionBias) : null;
    const guess = route(p, s.ex!, w.smallOf(next.entryIndex, next.names.router), nextBias, next.dims, N);
    w.predictExperts(next.entryIndex, [...new Set(guess.ids)].sort((a, b) => a - b));
  }

  // Rows per expert, in row order, with their weights.
  const rowsOf = new Map<number, { rows: number[]; scales: number[] }>();
  for (let t = 0; t < N; t++) {
    for (let j = 0; j < d.topK; j++) {
      const e = routed.ids[t * d.topK + j]!;
      let r = rowsOf.get(e);
      if (!r) rowsOf.set(e, (r = { rows: [], scales: [] }));
      r.rows.push(t);
      r.scales.push(routed.weights[t * d.topK + j]!);
    }
  }
  const order = [...rowsOf.keys()].sort((a, b) => a - b);
  for (const [e, ew] of w.experts(order)) {
    const { rows, scales } = rowsOf.get(e)!;
    const idx = Int32Array.from(rows);
    const M = idx.length;
    const ep: Pass = { ...p, weights: ew };
    // ex[M, H] = xb[rows]; eo = down(silu(gate(ex)) * up(ex)); x[rows] += w · eo
    be.gatherRows(s.ex!, s.xb!, idx, H);
    const names = n.expert(e);
    swigluProjection(ep, s.eg!, s.eu!, s.ex!, names, M, d.expertInter, false);
    linear(ep, s.eo!, s.eg!, `${names.down}.weight`, M);
    be.scatterAddRows(s.x!, s.eo!, idx, Float32Array.from(scales), H);
  }

  if (n.shared) {
    // x += sigmoid(gate · xb) · shared(xb) (or shared(xb) without a gate), every row
    swigluProjection(p, s.eg!, s.eu!, s.xb!, n.shared, N, d.sharedInter, false);
    linear(p, s.eo!, s.eg!, `${n.shared.down}.weight`, N);
    if (sharedScale === null) be.add(s.x!, s.x!, s.eo!, N * H);
    else be.scatterAddRows(s.x!, s.eo!, Int32Array.from({ length: N }, (_, t) => t), sharedScale, H);
  }
}
