// The summary of a fuzz run: counts per class and per family, every case outside the good classes
// with its reason, and the peak RSS of the huge-count cases (which must stay under the bound).
import { CLASSES, GOOD } from "./classify.ts";
import type { Outcome } from "./run-case.ts";

const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;
/** Text from the binary, escaped: a failing build may print raw bytes from its input. */
const shown = (s: string, max: number) => JSON.stringify(s.slice(0, max)).slice(1, -1);

export function report(outcomes: readonly Outcome[], seed: number, seconds: number): string {
  const lines: string[] = [];
  lines.push(`${outcomes.length} cases, seed ${seed}, ${seconds.toFixed(0)} s`);
  lines.push("");
  lines.push("| class | cases |", "|---|---:|");
  for (const c of CLASSES) lines.push(`| ${c} | ${outcomes.filter((o) => o.cls === c).length} |`);
  // What the case asked for beside what it got: "either" is a mutation that may leave a valid input.
  lines.push("", "| expected | clear error | accepted | other |", "|---|---:|---:|---:|");
  for (const e of ["error", "ok", "either"] as const) {
    const of = outcomes.filter((o) => o.expect === e);
    lines.push(`| ${e} | ${of.filter((o) => o.cls === "clear-error").length} | ${of.filter((o) => o.cls === "accepted").length} | ${of.filter((o) => !GOOD.has(o.cls)).length} |`);
  }
  const families = [...new Set(outcomes.map((o) => o.family))].sort();
  lines.push("", "| family | cases | clear error | accepted | other |", "|---|---:|---:|---:|---:|");
  for (const f of families) {
    const of = outcomes.filter((o) => o.family === f);
    lines.push(`| ${f} | ${of.length} | ${of.filter((o) => o.cls === "clear-error").length} | ${of.filter((o) => o.cls === "accepted").length} | ${of.filter((o) => !GOOD.has(o.cls)).length} |`);
  }
  const huge = outcomes.filter((o) => o.hugeCount);
  if (huge.length > 0) {
    const peak = huge.reduce((a, o) => (o.peakRss > a.peakRss ? o : a));
    lines.push("", `huge-count cases: ${huge.length}, peak RSS at most ${mib(peak.peakRss)} (${peak.id}: ${peak.what})`);
  }
  const bad = outcomes.filter((o) => !GOOD.has(o.cls));
  lines.push("", bad.length === 0 ? "no case outside clear-error and accepted" : `${bad.length} cases outside clear-error and accepted:`);
  for (const o of bad) lines.push(`- ${o.cls} ${o.id} (${o.what}): ${shown(o.reason, 200)}${o.errorLine ? ` — ${shown(o.errorLine, 160)}` : ""}`);
  return lines.join("\n");
}
