// Activation buffers for one pass, allocated for a number of rows and reused across passes;
// they grow (never per layer, never per token) only when a pass brings more rows.
import type { Backend } from "../backend/backend.ts";

export interface ScratchShape {
  readonly hidden: number;
  readonly qDim: number;
  readonly kvDim: number;
  readonly intermediate: number;
  readonly vocab: number;
}

export class Scratch {
  /** Residual stream x[N, hidden]. */
  x = 0;
  /** Normed input xb[N, hidden]. */
  xb = 0;
  q = 0;
  k = 0;
  v = 0;
  /** Attention output att[N, qDim]. */
  att = 0;
  gate = 0;
  up = 0;
  /** Projection output before the residual add, [N, hidden]. */
  out = 0;
  /** Logits [N, vocab] (only the rows that are asked for). */
  logits = 0;
  private rows = 0;
  private logitRows = 0;
  private readonly owned: number[] = [];

  constructor(
    private readonly backend: Backend,
    readonly shape: ScratchShape,
  ) {}

  /** Bytes for `rows` rows and `logitRows` rows of logits: the planner reserves this in the budget. */
  static bytesFor(s: ScratchShape, rows: number, logitRows: number): number {
    return rows * 4 * (3 * s.hidden + 2 * s.qDim + 2 * s.kvDim + 2 * s.intermediate) + logitRows * 4 * s.vocab;
  }

  ensure(rows: number, logitRows: number): void {
    if (rows <= this.rows && logitRows <= this.logitRows) return;
    rows = Math.max(rows, this.rows);
    logitRows = Math.max(logitRows, this.logitRows);
    this.release();
    const s = this.shape;
    const a = (floats: number) => {
      const addr = this.backend.alloc(Math.max(1, rows * floats) * 4);
      this.owned.push(addr);
      return addr;
    };
    this.x = a(s.hidden);
    this.xb = a(s.hidden);
    this.out = a(s.hidden);
    this.q = a(s.qDim);
    this.att = a(s.qDim);
    this.k = a(s.kvDim);
    this.v = a(s.kvDim);
    this.gate = a(s.intermediate);
    this.up = a(s.intermediate);
    this.rows = rows;
    this.logits = this.backend.alloc(Math.max(1, logitRows * s.vocab) * 4);
    this.owned.push(this.logits);
    this.logitRows = logitRows;
  }

  release(): void {
    for (const addr of this.owned) this.backend.free(addr);
    this.owned.length = 0;
    this.rows = 0;
    this.logitRows = 0;
  }
}
