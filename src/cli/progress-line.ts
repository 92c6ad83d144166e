// A progress line for slow passes (a big model streaming from disk): once a pass has run for
// about a second, stderr shows `token 3/64 · layer 17/32 · 1.8 s/token`, rewritten in place.
// Only on a terminal: piped or redirected stderr never gets carriage-return noise.
import type { Engine } from "../engine/engine.ts";
import type { PlanEntry } from "../model/architecture.ts";

const SHOW_AFTER_MS = 1000;

export class ProgressLine {
  private passStart = 0;
  private lastPass = -1;
  private lastPassMs = 0;
  private shown = false;
  /** Tokens generated so far (the caller updates it). */
  token = 0;

  /**
   * False while generated text on the same terminal has an unfinished line: the progress line
   * would overwrite it. (With stdout redirected, it is always true.)
   */
  canDraw: () => boolean = () => true;

  constructor(
    private readonly write: (s: string) => void,
    private readonly totalTokens: number,
    private readonly layers: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Hooks the engine when stderr is a terminal (`tty`); null otherwise. */
  static attach(engine: Engine, tty: boolean, write: (s: string) => void, totalTokens: number, layers: number): ProgressLine | null {
    if (!tty) return null;
    const line = new ProgressLine(write, totalTokens, layers);
    engine.onEntry = (entry, pass) => line.onEntry(entry, pass);
    return line;
  }

  onEntry(entry: PlanEntry, pass: number): void {
    const now = this.now();
    if (pass !== this.lastPass) {
      if (this.lastPass >= 0) this.lastPassMs = now - this.passStart;
      this.passStart = now;
      this.lastPass = pass;
    }
    if (now - this.passStart < SHOW_AFTER_MS && this.lastPassMs < SHOW_AFTER_MS) return;
    if (!this.canDraw()) return;
    const layer = entry.layer >= 0 ? entry.layer + 1 : entry.index === 0 ? 0 : this.layers;
    const rate = this.lastPassMs > 0 ? ` · ${(this.lastPassMs / 1000).toFixed(1)} s/token` : "";
    this.write(`\r\x1b[2Ktoken ${this.token}/${this.totalTokens} · layer ${layer}/${this.layers}${rate}`);
    this.shown = true;
  }

  /** Erase the line (before the summary or an error). */
  clear(): void {
    if (this.shown) this.write("\r\x1b[2K");
    this.shown = false;
  }
}
