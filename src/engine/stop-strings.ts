// Stop strings over streamed text: text is released only once no stop string can still begin
// inside it, so a stop string is never half-printed; the match and everything after it are cut.

export class StopStringFilter {
  private pending = "";
  private readonly longest: number;
  stopped = false;
  /** The stop string that matched. */
  matched: string | null = null;

  constructor(private readonly stops: readonly string[]) {
    this.longest = stops.reduce((a, s) => Math.max(a, s.length), 0);
  }

  /** Adds streamed text; returns what can be shown now. After a match, `stopped` is true. */
  push(text: string): string {
    if (this.stopped) return "";
    if (this.stops.length === 0) return text;
    this.pending += text;
    let cut = -1;
    for (const s of this.stops) {
      if (s.length === 0) continue;
      const at = this.pending.indexOf(s);
      if (at >= 0 && (cut < 0 || at < cut)) {
        cut = at;
        this.matched = s;
      }
    }
    if (cut >= 0) {
      this.stopped = true;
      const out = this.pending.slice(0, cut);
      this.pending = "";
      return out;
    }
    // Hold back the longest tail that is a proper prefix of some stop string.
    let hold = 0;
    for (let n = Math.min(this.longest - 1, this.pending.length); n > 0; n--) {
      const tail = this.pending.slice(this.pending.length - n);
      if (this.stops.some((s) => s.startsWith(tail))) {
        hold = n;
        break;
      }
    }
    const out = this.pending.slice(0, this.pending.length - hold);
    this.pending = this.pending.slice(this.pending.length - hold);
    return out;
  }

  /** The end of the stream: whatever was held back is not a stop string after all. */
  flush(): string {
    const out = this.stopped ? "" : this.pending;
    this.pending = "";
    return out;
  }
}
