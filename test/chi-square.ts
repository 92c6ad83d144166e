// The two-sample chi-square test the speculative-decoding tests use to compare token
// distributions (speculative sampling against plain sampling, an acceptance rule against p itself).
import { expect } from "bun:test";
import type { GenerationResult } from "../src/engine/job.ts";
import { Sampler, type Distribution } from "../src/engine/sampler.ts";

/** Two-sample chi-square over the bins both samples fill (expected ≥ 5), the rest pooled. */
export function chiSquare(a: Map<number, number>, b: Map<number, number>): { stat: number; df: number } {
  const na = [...a.values()].reduce((x, y) => x + y, 0);
  const nb = [...b.values()].reduce((x, y) => x + y, 0);
  const keys = new Set([...a.keys(), ...b.keys()]);
  const bins: [number, number][] = [];
  let rest: [number, number] = [0, 0];
  for (const k of keys) {
    const ca = a.get(k) ?? 0;
    const cb = b.get(k) ?? 0;
    if (ca + cb >= 10) bins.push([ca, cb]);
    else rest = [rest[0] + ca, rest[1] + cb];
  }
  if (rest[0] + rest[1] > 0) bins.push(rest);
  let stat = 0;
  for (const [ca, cb] of bins) {
    const total = ca + cb;
    const ea = (total * na) / (na + nb);
    const eb = (total * nb) / (na + nb);
    stat += (ca - ea) ** 2 / ea + (cb - eb) ** 2 / eb;
  }
  return { stat, df: bins.length - 1 };
}

/** The chi-square value exceeded with probability 0.001 (Wilson-Hilferty). */
export function chiSquareBound(df: number): number {
  const z = 3.09;
  return df * (1 - 2 / (9 * df) + z * Math.sqrt(2 / (9 * df))) ** 3;
}

/**
 * How often each id comes out as the `step`-th new token over seeds 0 .. N-1, 50 requests in
 * flight at a time, and how many drafts were accepted in all.
 */
async function tokenCounts(N: number, step: number, generate: (seed: number) => Promise<GenerationResult>): Promise<{ counts: Map<number, number>; accepted: number }> {
  const counts = new Map<number, number>();
  let accepted = 0;
  for (let s = 0; s < N; s += 50) {
    const batch = Array.from({ length: Math.min(50, N - s) }, (_, i) => s + i);
    for (const r of await Promise.all(batch.map(generate))) {
      const id = r.tokens[step - 1]!;
      counts.set(id, (counts.get(id) ?? 0) + 1);
      accepted += r.speculation?.accepted ?? 0;
    }
  }
  return { counts, accepted };
}

/**
 * 20 000 rounds, each a draw from p itself and the outcomes of an acceptance rule and of the same
 * rule biased (`round`, with the sampler's generator): the rule's pass against the draws, the
 * biased rule's fail.
 */
export function expectRuleKeepsP(p: Distribution, seed: number, round: (s: Sampler) => { accepted: number; biased: number }): void {
  const s = new Sampler({ temperature: 1, seed });
  const direct = new Map<number, number>();
  const accepted = new Map<number, number>();
  const biased = new Map<number, number>();
  const add = (m: Map<number, number>, k: number) => m.set(k, (m.get(k) ?? 0) + 1);
  for (let i = 0; i < 20000; i++) {
    add(direct, s.draw(p));
    const r = round(s);
    add(accepted, r.accepted);
    add(biased, r.biased);
  }
  const good = chiSquare(direct, accepted);
  expect(good.stat).toBeLessThan(chiSquareBound(good.df));
  const bad = chiSquare(direct, biased);
  expect(bad.stat).toBeGreaterThan(chiSquareBound(bad.df));
}

/**
 * The `step`-th new token over N seeds, plain sampling against speculative (other seeds): the two
 * samples pass the p = 0.001 bound over more than 3 degrees of freedom. Returns the speculative
 * runs' accepted drafts.
 */
export async function expectSameTokenDistribution(N: number, step: number, plain: (seed: number) => Promise<GenerationResult>, speculative: (seed: number) => Promise<GenerationResult>): Promise<number> {
  const [a, b] = await Promise.all([tokenCounts(N, step, plain), tokenCounts(N, step, (seed) => speculative(100_000 + seed))]);
  const { stat, df } = chiSquare(a.counts, b.counts);
  expect(df).toBeGreaterThan(3);
  expect(stat).toBeLessThan(chiSquareBound(df));
  return b.accepted;
}
