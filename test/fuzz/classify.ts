// What a run of the binary on a fuzz case amounts to, in the classes: a clear error (one
// "airllm: error:" line, a hint, nothing raw), a valid input accepted, or one of the failures —
// a crash (signal, internal error, stack trace), a hang, memory over the bound, a silent success
// on broken input, a valid input refused, or an error that is not clear.
import type { Expect } from "./case.ts";

export const CLASSES = ["clear-error", "accepted", "crash", "hang", "memory", "silent-success", "wrong-refusal", "unclear-error"] as const;
export type Class = (typeof CLASSES)[number];

/** The classes a correct binary produces. */
export const GOOD: ReadonlySet<Class> = new Set(["clear-error", "accepted"]);

export interface RunResult {
  readonly code: number | null;
  readonly signal: string | null;
  readonly stderr: string;
  readonly timedOut: boolean;
  readonly peakRss: number;
}

/** Longest error line a clear error may have (the CLI bounds its own at 1000 characters plus the prefix). */
const LINE_LIMIT = 1100;

/** Why `stderr` is not a clear error report, or null when it is one. */
function unclear(stderr: string): string | null {
  if (/[\u0000-\u0008\u000b-\u001f\u007f\u009b]/.test(stderr)) return "raw control characters on stderr";
  const lines = stderr.split("\n");
  const errors = lines.filter((l) => l.startsWith("airllm: error: "));
  if (errors.length !== 1) return errors.length === 0 ? "no \"airllm: error:\" line" : `${errors.length} error lines`;
  const at = lines.indexOf(errors[0]!);
  if (!lines[at + 1]?.startsWith("hint: ")) return "no hint line after the error";
  const long = lines.find((l) => l.length > LINE_LIMIT);
  if (long !== undefined) return `a ${long.length}-character line`;
  return null;
}

/** Signs of a crash or an unexpected exception in stderr, whatever the exit status. */
function crashed(stderr: string): string | null {
  if (/^airllm: internal error/m.test(stderr)) return stderr.match(/^airllm: internal error.*$/m)![0].slice(0, 200);
  if (/^\s+at .+[(:]\d+/m.test(stderr)) return "a stack trace";
  if (/panic|Segmentation fault|Bun has crashed|oh no: Bun/i.test(stderr)) return "a runtime crash report";
  return null;
}

export function classify(r: RunResult, expect: Expect, rssLimit: number): { cls: Class; reason: string } {
  if (r.timedOut) return { cls: "hang", reason: "no exit before the time limit" };
  if (r.peakRss > rssLimit) return { cls: "memory", reason: `peak RSS ${(r.peakRss / 2 ** 20).toFixed(0)} MiB` };
  if (r.signal !== null) return { cls: "crash", reason: `killed by ${r.signal}` };
  const crash = crashed(r.stderr);
  if (crash !== null || (r.code !== 0 && r.code !== 1 && r.code !== 2)) return { cls: "crash", reason: crash ?? `exit status ${r.code}` };
  if (r.code === 0) {
    if (expect === "error") return { cls: "silent-success", reason: "exit 0 on an input that must be refused" };
    return { cls: "accepted", reason: "" };
  }
  const why = unclear(r.stderr);
  if (why !== null) return { cls: "unclear-error", reason: why };
  if (expect === "ok") return { cls: "wrong-refusal", reason: r.stderr.split("\n").find((l) => l.startsWith("airllm: error: "))!.slice(0, 200) };
  return { cls: "clear-error", reason: "" };
}
