// Activation buffers of a pass, named and sized by the architecture (floats per row), allocated
// for a number of rows and reused across passes; they grow (never per layer, never per token) only
// when a pass brings more rows. Logits have rows of their own: only the rows that are asked for.
import type { Backend } from "../backend/backend.ts";
import type { ActivationWidths } from "../model/architecture.ts";

const ALIGN = 256;
const align = (bytes: number) => Math.ceil(bytes / ALIGN) * ALIGN;

export class Activations {
  /** Device address of each named buffer. */
  readonly buf: Record<string, number> = {};
  /** logits[logitRows, vocab]. */
  logits = 0;
  private rows = 0;
  private logitRows = 0;
  private base = 0;

  constructor(
    private readonly backend: Backend,
    readonly widths: ActivationWidths,
    readonly vocab: number,
  ) {}

  /** Bytes for `rows` rows and `logitRows` rows of logits: the planner reserves this in the budget. */
  static bytesFor(widths: ActivationWidths, vocab: number, rows: number, logitRows: number): number {
    return Object.values(widths).reduce((a, w) => a + align(rows * w * 4), 0) + align(Math.max(1, logitRows * vocab) * 4);
  }

  ensure(rows: number, logitRows: number): void {
    if (rows <= this.rows && logitRows <= this.logitRows) return;
    rows = Math.max(rows, this.rows);
    logitRows = Math.max(logitRows, this.logitRows);
    this.release();
    this.base = this.backend.alloc(Activations.bytesFor(this.widths, this.vocab, rows, logitRows));
    let at = this.base;
    for (const [name, w] of Object.entries(this.widths)) {
      this.buf[name] = at;
      at += align(rows * w * 4);
    }
    this.logits = at;
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
