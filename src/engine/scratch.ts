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
  /** One allocation carved into the buffers (every buffer 256-byte aligned). */
  private base = 0;

  constructor(
    private readonly backend: Backend,
    readonly shape: ScratchShape,
  ) {}

  /** Bytes for `rows` rows and `logitRows` rows of logits: the planner reserves this in the budget. */
  static bytesFor(s: ScratchShape, rows: number, logitRows: number): number {
    return rows * 4 * (3 * s.hidden + 2 * s.qDim + 2 * s.kvDim + 2 * s.intermediate) + logitRows * 4 * s.vocab + 10 * 256;
  }

  ensure(rows: number, logitRows: number): void {
    if (rows <= this.rows && logitRows <= this.logitRows) return;
    rows = Math.max(rows, this.rows);
    logitRows = Math.max(logitRows, this.logitRows);
    this.release();
    const s = this.shape;
    const sizes = [s.hidden, s.hidden, s.hidden, s.qDim, s.qDim, s.kvDim, s.kvDim, s.intermediate, s.intermediate].map((f) => align(rows * f * 4));
    const logitBytes = align(Math.max(1, logitRows * s.vocab) * 4);
    this.base = this.backend.alloc(sizes.reduce((a, b) => a + b, 0) + logitBytes);
    let at = this.base;
    const take = (bytes: number) => {
      const addr = at;
      at += bytes;
      return addr;
    };
    [this.x, this.xb, this.out, this.q, this.att, this.k, this.v, this.gate, this.up] = sizes.map(take);
    this.logits = take(logitBytes);
    this.rows = rows;
    this.logitRows = logitRows;
  }

  release(): void {
    if (this.base !== 0) this.backend.free(this.base);
    this.base = 0;
    this.rows = 0;
    this.logitRows = 0;
  }
}

const align = (bytes: number) => Math.ceil(bytes / 256) * 256;
