// How many draft tokens a sequence should send with its next pass. With acceptance rate a per
// token (each draft accepted independently, as Leviathan et al. model it), k drafts yield
// (1 - a^(k+1)) / (1 - a) tokens per pass on average. A pass costs about c0 + c1·rows: when the
// weights stream, c0 (the bytes) dominates and long drafts are nearly free; when the model is
// resident, c1 (the arithmetic) does and a long draft costs what it saves. The length chosen
// maximizes expected tokens per millisecond under the pass cost measured so far.

/** Running least-squares fit of pass time against the rows in the pass, recent passes weighted more. */
export class PassCost {
  private n = 0;
  private sx = 0;
  private sy = 0;
  private sxx = 0;
  private sxy = 0;

  constructor(private readonly decay = 0.95) {}

  record(rows: number, ms: number): void {
    const d = this.decay;
    this.n = this.n * d + 1;
    this.sx = this.sx * d + rows;
    this.sy = this.sy * d + ms;
    this.sxx = this.sxx * d + rows * rows;
    this.sxy = this.sxy * d + rows * ms;
  }

  /** [c0, c1] in ms and ms per row; null until two different row counts were seen. */
  fit(): [number, number] | null {
    const den = this.n * this.sxx - this.sx * this.sx;
    if (this.n < 2 || Math.abs(den) < 1e-9 * Math.max(1, this.sxx * this.n)) return null;
    const c1 = Math.max(0, (this.n * this.sxy - this.sx * this.sy) / den);
    const c0 = Math.max(1e-6, (this.sy - c1 * this.sx) / this.n);
    return [c0, c1];
  }
}

/** Expected tokens from one pass with k drafts at per-token acceptance `a`. */
export function expectedTokens(a: number, k: number): number {
  if (a >= 1) return k + 1;
  return (1 - a ** (k + 1)) / (1 - a);
}

/**
 * The draft length in 0..maxK that maximizes expected tokens per ms, for a pass that carries
 * `otherRows` rows besides this sequence's. Without a cost fit yet, maxK (a first pass learns).
 */
export function chooseDraftLength(acceptance: number, maxK: number, otherRows: number, cost: PassCost): number {
  const fit = cost.fit();
  if (fit === null) return maxK;
  const [c0, c1] = fit;
  let best = 0;
  let bestRate = -1;
  for (let k = 0; k <= maxK; k++) {
    const rate = expectedTokens(acceptance, k) / (c0 + c1 * (otherRows + 1 + k));
    if (rate > bestRate + 1e-12) {
      best = k;
      bestRate = rate;
    }
  }
  return best;
}

/** Acceptance rate per draft token, smoothed (starts from a prior, follows what verification finds). */
export class AcceptanceRate {
  private accepted: number;
  private drafted: number;

  constructor(prior = 0.5, weight = 4, private readonly decay = 0.9) {
    this.accepted = prior * weight;
    this.drafted = weight;
  }

  record(drafted: number, accepted: number): void {
    this.accepted = this.accepted * this.decay + accepted;
    this.drafted = this.drafted * this.decay + drafted;
  }

  /** A pass without drafts: the estimate drifts back toward the prior, so drafting is retried. */
  idle(prior = 0.5): void {
    this.accepted = this.accepted * this.decay + prior * 0.2;
    this.drafted = this.drafted * this.decay + 0.2;
  }

  get rate(): number {
    return this.drafted > 0 ? Math.min(0.999, this.accepted / this.drafted) : 0;
  }
}
