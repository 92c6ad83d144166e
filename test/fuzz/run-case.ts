// Runs the real binary on one fuzz case: in a fresh folder, with the case's stdin and stdout, a
// time limit and a watch on its memory (killed past a hard cap, so a blow-up cannot take the
// machine), then classified.
import { mkdtempSync, openSync, closeSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Case, Invocation } from "./case.ts";
import { classify, type Class } from "./classify.ts";

export interface Limits {
  readonly timeoutMs: number;
  /** Peak RSS above this is the "memory" class. */
  readonly rssLimit: number;
  /** The process is killed above this (a runaway must not exhaust the machine). */
  readonly rssKill: number;
}

export const DEFAULT_LIMITS: Limits = { timeoutMs: 30_000, rssLimit: 200 * 2 ** 20, rssKill: 1024 * 2 ** 20 };

export interface Outcome {
  readonly id: string;
  readonly family: string;
  readonly what: string;
  readonly expect: Case["expect"];
  readonly hugeCount: boolean;
  readonly cls: Class;
  readonly reason: string;
  readonly code: number | null;
  readonly peakRss: number;
  readonly ms: number;
  /** The error line the binary printed, if any (for the report). */
  readonly errorLine: string;
  /** The start of stderr, for tests that read the hint. */
  readonly stderr: string;
}

/**
 * The process's peak RSS so far (VmHWM): read while it runs, since the exit-time figure of an
 * asynchronous spawn is not per process when several run at once.
 */
function peakRssOf(pid: number): number {
  try {
    const m = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** argv and stdio for an invocation; closed streams and pipelines need a shell around the binary. */
function command(binary: string, inv: Invocation): { argv: string[]; stdout: "pipe" | number; stdin: "ignore" | "pipe"; devfull: number | null } {
  const out = inv.stdout ?? "pipe";
  const inClosed = inv.stdin === "closed";
  if (out === "closed" || out === "head" || inClosed) {
    const redirect = `${out === "closed" ? " >&-" : ""}${inClosed ? " <&-" : ""}`;
    const script = out === "head" ? `"$0" "$@"${redirect} | head -c1 >/dev/null; exit \${PIPESTATUS[0]}` : `exec "$0" "$@"${redirect}`;
    return { argv: ["bash", "-c", script, binary, ...inv.args], stdout: "pipe", stdin: "ignore", devfull: null };
  }
  const devfull = out === "devfull" ? openSync("/dev/full", "w") : null;
  const stdin = inv.stdin !== undefined && inv.stdin !== "null" ? "pipe" : "ignore";
  return { argv: [binary, ...inv.args], stdout: devfull ?? "pipe", stdin, devfull };
}

export async function runCase(c: Case, binary: string, limits: Limits = DEFAULT_LIMITS): Promise<Outcome> {
  const dir = mkdtempSync(join(tmpdir(), "airllm-fuzz-"));
  const t0 = performance.now();
  try {
    const inv = c.build(dir, binary);
    const cmd = command(binary, inv);
    const env = { ...process.env, AIRLLM_DEBUG: "" };
    const p = Bun.spawn(cmd.argv, { cwd: dir, stdout: cmd.stdout, stderr: "pipe", stdin: cmd.stdin, env });
    if (cmd.devfull !== null) closeSync(cmd.devfull);
    if (cmd.stdin === "pipe" && typeof inv.stdin === "object") {
      // Written in the background: a binary that refuses early stops reading, and that is fine.
      const sink = p.stdin as import("bun").FileSink;
      Promise.resolve()
        .then(async () => {
          sink.write(inv.stdin && typeof inv.stdin === "object" ? inv.stdin.bytes : new Uint8Array(0));
          await sink.end();
        })
        .catch(() => {});
    }
    const stdout = typeof cmd.stdout === "string" ? new Response(p.stdout as ReadableStream).arrayBuffer() : Promise.resolve(new ArrayBuffer(0));
    const stderr = new Response(p.stderr).text();
    let peak = 0;
    let killedForMemory = false;
    let timedOut = false;
    const watch = setInterval(() => {
      // VmHWM keeps the peak between polls; only growth in the last interval before exit is missed.
      peak = Math.max(peak, peakRssOf(p.pid));
      if (peak > limits.rssKill) {
        killedForMemory = true;
        p.kill("SIGKILL");
      }
    }, 20);
    const timer = setTimeout(() => {
      timedOut = true;
      p.kill("SIGKILL");
    }, limits.timeoutMs);
    const code = await p.exited;
    clearInterval(watch);
    clearTimeout(timer);
    await stdout.catch(() => undefined);
    const err = await stderr;
    const signal = killedForMemory || timedOut || p.signalCode === null ? null : String(p.signalCode);
    const r = classify({ code: p.signalCode ? null : code, signal, stderr: err, timedOut, peakRss: killedForMemory ? Math.max(peak, limits.rssKill + 1) : peak }, c.expect, limits.rssLimit);
    return {
      id: c.id, family: c.family, what: c.what, expect: c.expect, hugeCount: c.hugeCount === true, cls: r.cls, reason: r.reason, code, peakRss: peak,
      ms: performance.now() - t0, errorLine: err.split("\n").find((l) => l.startsWith("airllm: error: ")) ?? "", stderr: err.slice(0, 8000),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs `cases` on `jobs` workers; outcomes in case order. `onOutcome` sees each as it finishes. */
export async function runMany(cases: readonly Case[], binary: string, jobs: number, onOutcome?: (o: Outcome, done: number) => void): Promise<Outcome[]> {
  const outcomes: Outcome[] = new Array(cases.length);
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < cases.length) {
      const i = next++;
      outcomes[i] = await runCase(cases[i]!, binary);
      onOutcome?.(outcomes[i]!, ++done);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, jobs) }, worker));
  return outcomes;
}
