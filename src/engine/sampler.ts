// Next-token choice from logits. Order of the transforms is Hugging Face's logits-processor
// order: repetition penalty, then OpenAI's frequency and presence penalties, temperature, top-k,
// top-p, min-p; then a draw from a seeded PRNG (same seed, same output). temperature 0 means
// greedy (argmax, lowest id on ties).
import { UsageError } from "../errors.ts";

export interface SamplingOptions {
  /** 0 = greedy. */
  readonly temperature?: number;
  /** 0 = off. */
  readonly topK?: number;
  /** 1 = off. */
  readonly topP?: number;
  /** 0 = off. */
  readonly minP?: number;
  /** 1 = off. Applied to every id already in the sequence (prompt included), as transformers does. */
  readonly repetitionPenalty?: number;
  /**
   * 0 = off. OpenAI's penalties, over the generated tokens only (as vLLM applies them):
   * logit -= frequency · count + presence · (count > 0). Each in [-2, 2].
   */
  readonly frequencyPenalty?: number;
  readonly presencePenalty?: number;
  readonly seed?: number;
}

export function validateSampling(o: SamplingOptions): void {
  const bad = (what: string, v: number, hint: string) => {
    throw new UsageError(`${what} ${v} is out of range`, hint);
  };
  if (o.temperature !== undefined && !(o.temperature >= 0)) bad("temperature", o.temperature, "use 0 (greedy) or a positive value");
  if (o.topK !== undefined && !(o.topK >= 0 && Number.isInteger(o.topK))) bad("top-k", o.topK, "use 0 (off) or a positive integer");
  if (o.topP !== undefined && !(o.topP > 0 && o.topP <= 1)) bad("top-p", o.topP, "use a value in (0, 1]; 1 turns it off");
  if (o.minP !== undefined && !(o.minP >= 0 && o.minP < 1)) bad("min-p", o.minP, "use a value in [0, 1); 0 turns it off");
  if (o.repetitionPenalty !== undefined && !(o.repetitionPenalty > 0)) {
    bad("repetition penalty", o.repetitionPenalty, "use a positive value; 1 turns it off");
  }
  for (const [name, v] of [["frequency penalty", o.frequencyPenalty], ["presence penalty", o.presencePenalty]] as const) {
    if (v !== undefined && !(v >= -2 && v <= 2)) bad(name, v, "use a value in [-2, 2]; 0 turns it off");
  }
}

/** mulberry32: small, fast, and the same sequence on every platform for a given seed. */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
}

export function argmax(logits: Float32Array): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
}

/**
 * What the sampler would draw from: the kept ids (highest first) with their probabilities, after
 * penalties, temperature, top-k, top-p and min-p. Greedy is one id with probability 1.
 */
export interface Distribution {
  readonly ids: readonly number[];
  readonly probs: readonly number[];
}

/** The probability of `id` under `d` (0 when it was not kept). */
export function probabilityOf(d: Distribution, id: number): number {
  const i = d.ids.indexOf(id);
  return i < 0 ? 0 : d.probs[i]!;
}

export class Sampler {
  readonly rng: Rng;

  constructor(private readonly o: SamplingOptions) {
    validateSampling(o);
    this.rng = new Rng(o.seed ?? (Math.random() * 2 ** 32) >>> 0);
  }

  get greedy(): boolean {
    return (this.o.temperature ?? 0) === 0;
  }

  /**
   * Picks the next id. `history` is every id of the sequence so far, `generated` the ones this
   * request produced (for the frequency and presence penalties). Does not modify `logits`.
   */
  sample(logits: Float32Array, history: readonly number[], generated: readonly number[] = []): number {
    return this.draw(this.distribution(logits, history, generated));
  }

  /** One draw from `d` with this sampler's seeded generator (none for a single id). */
  draw(d: Distribution): number {
    if (d.ids.length === 1) return d.ids[0]!;
    let mass = 0;
    for (const p of d.probs) mass += p;
    let r = this.rng.next() * mass;
    for (let i = 0; i < d.ids.length; i++) {
      r -= d.probs[i]!;
      if (r < 0) return d.ids[i]!;
    }
    return d.ids[d.ids.length - 1]!;
  }

  /** The distribution the next id is drawn from (see Distribution). */
  distribution(logits: Float32Array, history: readonly number[], generated: readonly number[] = []): Distribution {
    const scores = this.penalized(logits, history, generated);
    const temperature = this.o.temperature ?? 0;
    if (temperature === 0) return { ids: [argmax(scores)], probs: [1] };

    // Candidates sorted by score, highest first; top-k keeps a prefix.
    const order = Array.from(scores.keys()).sort((a, b) => scores[b]! - scores[a]! || a - b);
    const topK = this.o.topK ?? 0;
    const kept = topK > 0 ? order.slice(0, topK) : order;
    const max = scores[kept[0]!]!;
    const probs = kept.map((id) => Math.exp((scores[id]! - max) / temperature));
    const total = probs.reduce((a, b) => a + b, 0);
    for (let i = 0; i < probs.length; i++) probs[i]! /= total;

    // top-p: the smallest prefix whose mass reaches p (the first token always stays).
    let n = probs.length;
    const topP = this.o.topP ?? 1;
    if (topP < 1) {
      let mass = 0;
      for (let i = 0; i < probs.length; i++) {
        mass += probs[i]!;
        if (mass >= topP) {
          n = i + 1;
          break;
        }
      }
    }
    // min-p: drop tokens below min_p × the top probability.
    const minP = this.o.minP ?? 0;
    if (minP > 0) {
      const floor = minP * probs[0]!;
      while (n > 1 && probs[n - 1]! < floor) n--;
    }
    // Renormalized over what is kept, so draws and acceptance tests see one distribution.
    let mass = 0;
    for (let i = 0; i < n; i++) mass += probs[i]!;
    return { ids: kept.slice(0, n), probs: probs.slice(0, n).map((p) => p / mass) };
  }

  private penalized(logits: Float32Array, history: readonly number[], generated: readonly number[]): Float32Array {
    const penalty = this.o.repetitionPenalty ?? 1;
    const frequency = this.o.frequencyPenalty ?? 0;
    const presence = this.o.presencePenalty ?? 0;
    if (penalty === 1 && frequency === 0 && presence === 0) return logits;
    const scores = Float32Array.from(logits);
    if (penalty !== 1) {
      for (const id of new Set(history)) {
        const s = scores[id]!;
        scores[id] = s > 0 ? s / penalty : s * penalty;
      }
    }
    if (frequency !== 0 || presence !== 0) {
      const counts = new Map<number, number>();
      for (const id of generated) counts.set(id, (counts.get(id) ?? 0) + 1);
      for (const [id, n] of counts) scores[id]! -= frequency * n + presence;
    }
    return scores;
  }
}

/** log-softmax of the raw logits at `id`, and the `top` most likely ids with theirs (OpenAI logprobs). */
export function logprobs(logits: Float32Array, id: number, top: number): { logprob: number; top: { id: number; logprob: number }[] } {
  let max = -Infinity;
  for (const v of logits) if (v > max) max = v;
  let sum = 0;
  for (const v of logits) sum += Math.exp(v - max);
  const logZ = max + Math.log(sum);
  const best: { id: number; logprob: number }[] = [];
  if (top > 0) {
    for (let i = 0; i < logits.length; i++) {
      const v = logits[i]!;
      if (best.length < top || v > best[best.length - 1]!.logprob) {
        best.push({ id: i, logprob: v });
        best.sort((a, b) => b.logprob - a.logprob || a.id - b.id);
        if (best.length > top) best.pop();
      }
    }
    for (const b of best) b.logprob -= logZ;
  }
  return { logprob: logits[id]! - logZ, top: best };
}
