// Which draft tokens the target accepts, so that what comes out is distributed exactly as the
// target would sample it alone. At each node (the root first) the target's distribution p there
// decides among the node's children:
//  - a child drawn from a draft distribution q: accept it with probability min(1, p(x)/q(x));
//    on rejection what is left to draw from is max(p - q, 0), renormalized (Leviathan et al. 2023;
//    Chen et al. 2023);
//  - children chosen deterministically (n-gram continuations, a draft's top-k): try them in
//    order, accepting each with its probability under what is left of p (the residual, after a
//    rejected drawn child), zeroing it on rejection, and draw from the remainder when none is
//    accepted — the multi-draft rule of SpecInfer and SpecExec for candidates with a point-mass
//    draft. Any exact way to sample the residual keeps the whole exact, whatever the candidates
//    were, as long as they were chosen before the target's random numbers are drawn.
// Greedy targets put all mass on one id: a child is accepted exactly when it is the argmax, and
// no random number is drawn, so greedy output equals non-speculative greedy output.
import type { Distribution } from "../sampler.ts";
import { probabilityOf, type Rng } from "../sampler.ts";
import { childrenOf, type DraftTree } from "./draft-tree.ts";

export interface Acceptance {
  /** Accepted nodes, root's child first. */
  readonly path: number[];
  /** The token drawn after the path (the target's own choice where drafting stopped). */
  readonly next: number;
}

/** Draws from `d` (a renormalized remainder) with `rng`. */
function draw(d: Distribution, rng: Rng): number {
  if (d.ids.length === 1) return d.ids[0]!;
  let mass = 0;
  for (const p of d.probs) mass += p;
  let r = rng.next() * mass;
  for (let i = 0; i < d.ids.length; i++) {
    r -= d.probs[i]!;
    if (r < 0) return d.ids[i]!;
  }
  return d.ids[d.ids.length - 1]!;
}

/** Bernoulli(p) without touching the generator when the outcome is certain. */
function chance(p: number, rng: Rng): boolean {
  if (p >= 1) return true;
  if (p <= 0) return false;
  return rng.next() < p;
}

/** p with `ids` removed, renormalized; null when nothing is left. */
function without(p: Distribution, removed: ReadonlySet<number>): Distribution | null {
  const ids: number[] = [];
  const probs: number[] = [];
  let mass = 0;
  p.ids.forEach((id, i) => {
    if (removed.has(id)) return;
    ids.push(id);
    probs.push(p.probs[i]!);
    mass += p.probs[i]!;
  });
  if (mass <= 0) return null;
  return { ids, probs: probs.map((x) => x / mass) };
}

/** max(p - q, 0), renormalized; p itself when that is empty (p = q). */
export function residual(p: Distribution, q: Distribution): Distribution {
  const ids: number[] = [];
  const probs: number[] = [];
  let mass = 0;
  p.ids.forEach((id, i) => {
    const r = p.probs[i]! - probabilityOf(q, id);
    if (r > 0) {
      ids.push(id);
      probs.push(r);
      mass += r;
    }
  });
  return mass > 0 ? { ids, probs: probs.map((x) => x / mass) } : p;
}

/**
 * Walks `tree` from the root. `target(node, path)` is the target's distribution after `node`
 * (-1: the root) given the accepted `path` (penalties depend on it).
 */
export function acceptTree(tree: DraftTree, target: (node: number, path: readonly number[]) => Distribution, rng: Rng): Acceptance {
  const children = childrenOf(tree);
  const path: number[] = [];
  let node = -1;
  for (;;) {
    let p: Distribution | null = target(node, path);
    const kids = children[node + 1]!;
    if (kids.length === 0) return { path, next: draw(p, rng) };
    let accepted = -1;
    let candidates = kids;
    // A child drawn from q first (Leviathan); on rejection the target's remaining law is the
    // residual, from which the deterministic children are then tried.
    const sampled = kids.find((k) => tree.q[k]);
    if (sampled !== undefined) {
      const q = tree.q[sampled]!;
      const x = tree.tokens[sampled]!;
      if (chance(probabilityOf(p, x) / Math.max(probabilityOf(q, x), 1e-30), rng)) accepted = sampled;
      else {
        p = residual(p, q);
        candidates = kids.filter((k) => k !== sampled);
      }
    }
    if (accepted < 0) {
      const rejected = new Set<number>();
      for (const k of candidates) {
        const x = tree.tokens[k]!;
        if (rejected.has(x)) continue;
        if (chance(probabilityOf(p!, x), rng)) {
          accepted = k;
          break;
        }
        rejected.add(x);
        p = without(p!, rejected);
        if (p === null) break;
      }
      if (accepted < 0) return { path, next: p === null ? tree.tokens[candidates.at(-1)!]! : draw(p, rng) };
    }
    path.push(accepted);
    node = accepted;
  }
}
